"""LaVie's UNet forward in float64 torch, written from the spec (§1–§4), for the UNet tests.

Tensors are 5-D ``(B, C, F, H, W)`` as in the original code; weights are a PyTorch-named state dict.
`Reference` is the base model (spec §2). Its hooks — `attn1`, `block`, `transformer_input`,
`after_level`, `embed`, `conv_in_input` — are what the interpolation and VSR references override.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Reference:
    def __init__(self, sd, heads=1, groups=8, layers=2, channels=(32, 64), cross_only=None):
        self.w = {k: v.double() for k, v in sd.items()}
        self.heads, self.groups, self.layers, self.channels = heads, groups, layers, channels
        self.cross_only = tuple(cross_only or (False,) * len(channels))

    # ------------------------------------------------------------------ layers
    def conv(self, name, x, stride=1):  # InflatedConv3d: a 2-D conv on every frame
        b, c, f, h, w = x.shape
        weight = self.w[f"{name}.weight"]
        y = F.conv2d(
            x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w),
            weight,
            self.w[f"{name}.bias"],
            stride=stride,
            padding=weight.shape[-1] // 2,
        )
        return y.reshape(b, f, *y.shape[1:]).permute(0, 2, 1, 3, 4)

    def gn(self, name, x, eps):  # over the 5-D tensor: statistics span all frames
        return F.group_norm(x, self.groups, self.w[f"{name}.weight"], self.w[f"{name}.bias"], eps)

    def linear(self, name, x, bias=True):
        return F.linear(x, self.w[f"{name}.weight"], self.w.get(f"{name}.bias") if bias else None)

    def ln(self, name, x):
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], 1e-5)

    def resnet(self, name, x, temb, eps=1e-5):
        h = self.conv(f"{name}.conv1", F.silu(self.gn(f"{name}.norm1", x, eps)))
        t = self.linear(f"{name}.time_emb_proj", F.silu(temb))  # (B, C), or (B, F, C): one per frame
        h = h + (t[:, :, None, None, None] if t.ndim == 2 else t.permute(0, 2, 1)[..., None, None])
        h = self.conv(f"{name}.conv2", F.silu(self.gn(f"{name}.norm2", h, eps)))
        shortcut = self.conv(f"{name}.conv_shortcut", x) if f"{name}.conv_shortcut.weight" in self.w else x
        return shortcut + h

    def split(self, y):  # (N, L, C) → (N, heads, L, d)
        return y.reshape(*y.shape[:2], self.heads, -1).transpose(1, 2)

    def attention(self, name, x, ctx):
        q = self.split(self.linear(f"{name}.to_q", x, bias=False))
        k = self.split(self.linear(f"{name}.to_k", ctx, bias=False))
        v = self.split(self.linear(f"{name}.to_v", ctx, bias=False))
        attn = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        return self.linear(f"{name}.to_out.0", out)

    @staticmethod
    def bucket(n):  # T5 bidirectional bucket of n = i − j, 32 buckets, max distance 32
        offset, n = (16 if n < 0 else 0), abs(n)
        if n < 8:
            return offset + n
        return offset + min(15, 8 + int(math.log(n / 8) / math.log(32 / 8) * 8))

    @staticmethod
    def rope(x):  # interleaved pairs on the first 32 channels, positions 0..F-1, theta 10000
        f = x.shape[-2]
        inv = 1.0 / 10000 ** (torch.arange(0, 32, 2, dtype=torch.float64) / 32)
        ang = torch.arange(f, dtype=torch.float64)[:, None] * inv[None]  # (F, 16)
        rot, rest = x[..., :32], x[..., 32:]
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        c, s = torch.cos(ang), torch.sin(ang)
        out = torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2)
        return torch.cat([out, rest], dim=-1)

    def temporal_attention(self, name, x, positions=True):  # x ((b hw), f, c)
        d = x.shape[-1] // self.heads
        q = self.split(self.linear(f"{name}.to_q", x, bias=False) * d**-0.5)
        k = self.split(self.linear(f"{name}.to_k", x, bias=False))
        v = self.split(self.linear(f"{name}.to_v", x, bias=False))
        sim = q @ k.transpose(-1, -2)
        if positions:
            f = x.shape[1]
            table = self.w[f"{name}.time_rel_pos_bias.relative_attention_bias.weight"]  # (32, heads)
            buckets = torch.tensor([[self.bucket(i - j) for j in range(f)] for i in range(f)])
            sim = self.rope(q) @ self.rope(k).transpose(-1, -2) + table[buckets].permute(2, 0, 1)
        out = (torch.softmax(sim, -1) @ v).transpose(1, 2).reshape(x.shape)
        return self.linear(f"{name}.to_out.0", out)

    def over_frames(self, fn, y, b, f):  # y ((b f), hw, c): fn on ((b hw), f, c), back
        hw, c = y.shape[1:]
        t = y.reshape(b, f, hw, c).permute(0, 2, 1, 3).reshape(b * hw, f, c)
        return fn(t).reshape(b, hw, f, c).permute(0, 2, 1, 3).reshape(b * f, hw, c)

    def ff(self, blk, y):
        hid = self.linear(f"{blk}.ff.net.0.proj", self.ln(f"{blk}.norm3", y))
        value, gate = hid.chunk(2, dim=-1)
        return self.linear(f"{blk}.ff.net.2", value * F.gelu(gate)) + y

    # ------------------------------------------------------------------ hooks
    def attn1(self, blk, h, ctx_f, b, f, cross_only):
        return self.attention(f"{blk}.attn1", h, ctx_f if cross_only else h)

    def block(self, blk, y, ctx_f, b, f, cross_only):  # base order (spec §2.2)
        y = self.attn1(blk, self.ln(f"{blk}.norm1", y), ctx_f, b, f, cross_only) + y
        y = self.attention(f"{blk}.attn2", self.ln(f"{blk}.norm2", y), ctx_f) + y
        y = self.over_frames(
            lambda t: self.temporal_attention(f"{blk}.attn_temp", self.ln(f"{blk}.norm_temp", t)) + t, y, b, f
        )
        return self.ff(blk, y)

    def transformer_input(self, name, x):
        return x

    def after_level(self, name, h, temb):
        return h

    def sinusoid(self, t):  # (N,) → (N, C0): [cos, sin] of t · 10000^(−i/half)
        half = self.channels[0] // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / half)
        ang = t.double()[:, None] * freqs[None]
        return torch.cat([torch.cos(ang), torch.sin(ang)], -1)

    def embed(self, t, class_labels):
        temb = self.sinusoid(t)
        return self.linear("time_embedding.linear_2", F.silu(self.linear("time_embedding.linear_1", temb)))

    def conv_in_input(self, x, low_res):
        return x

    # ------------------------------------------------------------------ structure
    def project(self, name, y):  # 1×1 conv weight (O, I, 1, 1) or Linear (O, I): the same map on tokens
        weight = self.w[f"{name}.weight"]
        return F.linear(y, weight.reshape(weight.shape[0], -1), self.w[f"{name}.bias"])

    def transformer(self, name, x, ctx, cross_only=False):
        x = self.transformer_input(name, x)
        b, c, f, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        res = frames
        y = F.group_norm(
            frames, self.groups, self.w[f"{name}.norm.weight"], self.w[f"{name}.norm.bias"], 1e-6
        )
        y = self.project(f"{name}.proj_in", y.permute(0, 2, 3, 1).reshape(b * f, h * w, c))
        ctx_f = ctx.repeat_interleave(f, dim=0)  # 'b n c -> (b f) n c'
        y = self.block(f"{name}.transformer_blocks.0", y, ctx_f, b, f, cross_only)
        y = self.project(f"{name}.proj_out", y).reshape(b * f, h, w, c).permute(0, 3, 1, 2) + res
        return y.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)

    def __call__(self, x, t, ctx, low_res=None, class_labels=None):
        temb = self.embed(t, class_labels)
        h = self.conv("conv_in", self.conv_in_input(x, low_res))
        skips = [h]
        n = len(self.channels)
        for i in range(n):
            for j in range(self.layers):
                h = self.resnet(f"down_blocks.{i}.resnets.{j}", h, temb)
                if f"down_blocks.{i}.attentions.{j}.norm.weight" in self.w:
                    h = self.transformer(f"down_blocks.{i}.attentions.{j}", h, ctx, self.cross_only[i])
                skips.append(h)
            if i < n - 1:
                h = self.conv(f"down_blocks.{i}.downsamplers.0.conv", h, stride=2)
                skips.append(h)
            h = self.after_level(f"down_temporal_blocks.{i}", h, temb)
        h = self.resnet("mid_block.resnets.0", h, temb)
        h = self.transformer("mid_block.attentions.0", h, ctx)
        h = self.resnet("mid_block.resnets.1", h, temb)
        h = self.after_level("mid_temporal_block", h, temb)
        for i in range(n):
            for j in range(self.layers + 1):
                h = self.resnet(f"up_blocks.{i}.resnets.{j}", torch.cat([h, skips.pop()], dim=1), temb)
                if f"up_blocks.{i}.attentions.{j}.norm.weight" in self.w:
                    h = self.transformer(f"up_blocks.{i}.attentions.{j}", h, ctx, self.cross_only[n - 1 - i])
            if i < n - 1:
                h = F.interpolate(h, scale_factor=(1, 2, 2), mode="nearest")
                h = self.conv(f"up_blocks.{i}.upsamplers.0.conv", h)
            h = self.after_level(f"up_temporal_blocks.{i}", h, temb)
        return self.conv("conv_out", F.silu(self.gn("conv_norm_out", h, 1e-5)))
