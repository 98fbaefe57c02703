"""Base text-to-video stage (spec §2) at the paper's size: SD1.4 UNet + temporal attention, 16×320×512.

    python -m lavie_jax.train --config configs/base.py --workdir runs/base \\
        --config.init_from=converted/lavie_base --config.data.path=DATA --config.mesh.fsdp=8

`init_from` is a model folder (``tools/convert_sd.py``): the UNet starts from its weights (a
converted SD1.4 gives the spatial layers; the temporal output projections are zero, so the
network starts as SD applied per frame) and its VAE, text encoder and tokenizer are the frozen
encoders. Expect the loss (ε-MSE) to start near 0.1–0.2 from SD weights and fall slowly; from a
random UNet it starts near 1. Every field is documented below; an unknown ``--config.x`` is an error.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.stage = "base"  # 'base' | 'interpolation' | 'vsr' | 'vae': the objective (train.py docstring)
    config.seed = 0  # initialisation and every random draw of training (noise, timesteps, dropout)
    config.init_from = ""  # model folder to start from (unet/, vae/, text_encoder/, tokenizer/); '' = random
    config.encoders_from = (
        ""  # model folder whose vae/, text_encoder/, tokenizer/ are used ('' = init_from's)
    )
    config.fresh = False  # True: move an existing checkpoint of another run aside and start over
    config.distributed = "auto"  # jax.distributed.initialize(): 'auto' (when the env asks) | 'on' | 'off'

    # Mesh ('data', 'fsdp', 'tensor'); -1 = all remaining devices. The batch is split over data×fsdp.
    config.mesh = ml_collections.ConfigDict()
    config.mesh.data = -1  # pure data parallelism (parameters replicated)
    config.mesh.fsdp = 1  # parameters, optimizer state and EMA split over this axis (ZeRO-3 style)
    config.mesh.tensor = 1  # output features of every kernel split over this axis
    config.mesh.num_devices = -1  # use the first N devices only (-1 = all of them)

    # UNet (lavie_jax.models.unet3d.UNet3DConfig, spec §2.1): SD 1.4's layout + temporal attention.
    config.model = ml_collections.ConfigDict()
    config.model.in_channels = 4  # latent channels in (interpolation: 8 = x_t ⊕ copied keyframes)
    config.model.out_channels = 4
    config.model.block_out_channels = (320, 640, 1280, 1280)  # channels per level
    config.model.layers_per_block = 2  # resnets (+ transformers) per down level; up levels have one more
    config.model.down_block_types = ("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",)
    config.model.up_block_types = ("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3
    config.model.num_attention_heads = 8  # per level or one for all (SD's configs call it attention_head_dim)
    config.model.cross_attention_dim = 768  # text-embedding width (CLIP ViT-L/14)
    config.model.norm_num_groups = 32
    config.model.norm_eps = 1e-5
    config.model.use_linear_projection = False  # transformer proj_in/out: 1×1 conv (SD 1.x) or Linear
    config.model.only_cross_attention = False  # attn1 attends to the text instead of the frame
    config.model.flip_sin_to_cos = True  # timestep embedding order [cos, sin]
    config.model.freq_shift = 0  # timestep embedding frequency shift
    config.model.num_class_embeds = None  # class-label embeddings (the VSR noise level: 1000); None = none
    config.model.temporal = (
        "rope_relpos"  # temporal layers: 'rope_relpos' (LaVie base) | None (2-D per frame)
    )
    # Not in LaVie: add a sinusoidal embedding of the frame index to every temporal attention's input,
    # so the layers know each frame's absolute place (AnimateDiff does this); no parameters.
    config.model.frame_position = False
    # Not in LaVie: add a learned projection (zero at first) of the frame index's sinusoid to each video
    # frame's time embedding, so every resnet knows its frame's place; image frames get none.
    config.model.frame_time_embedding = False
    config.model.attention_impl = "xla"  # spatial attention: 'xla' | 'chunked' (memory-efficient) | 'cudnn'
    config.compute_dtype = "bfloat16"  # 'float32' | 'bfloat16' activations; parameters stay float32
    config.remat = False  # per UNet block: keep block inputs only, recompute the rest (less memory)

    config.vae_frame_batch = 8  # frames the frozen VAE encodes at once (bounds its activation memory)
    # Frozen encoders when init_from is '' (tiny configs): random VAE / CLIP text encoder of these
    # shapes (fields of the models' config classes). Ignored when init_from gives them.
    config.vae = ml_collections.ConfigDict({})
    config.text_encoder = ml_collections.ConfigDict({})
    # True: the text encoder trains with the UNet (same optimizer; exported with it) instead of being
    # frozen. LaVie keeps CLIP frozen; a small model trained from scratch needs this to read its prompts.
    config.train_text_encoder = False
    # stage='vae' trains the AutoencoderKL shaped by config.vae (lavie_jax/training/autoencoder.py).
    config.autoencoder = ml_collections.ConfigDict()
    config.autoencoder.kl_weight = 1e-6  # × the KL to N(0, I), averaged over latent elements
    config.autoencoder.reconstruction = "l1"  # 'l1' | 'l2', averaged over pixels

    # Data (lavie_jax/data): clips of num_frames at height×width with num_images extra images each.
    config.data = ml_collections.ConfigDict()
    config.data.source = "folder"  # 'folder' (videos + captions) | 'tfds' (ArrayRecord) | 'synthetic'
    config.data.path = ""  # the video dataset (folder or tfds data_dir); for 'synthetic' a cache folder
    config.data.image_path = (
        ""  # image dataset for joint training ('' = images drawn from the videos' frames)
    )
    config.data.num_frames = 16  # frames per clip (F)
    config.data.frame_stride = 3  # sample every k-th frame of the source video
    config.data.num_images = 4  # M images per example, each with its own caption (0 = video only)
    config.data.height = 320
    config.data.width = 512
    config.data.precomputed = False  # batches carry VAE latents and text embeddings (no encoders in the step)
    config.data.workers = 0  # grain worker processes (0 = in the main process)
    config.data.shuffle_seed = 0
    # source='synthetic': the set written to data.path (default WORKDIR/synthetic_<F>x<H>x<W>) if absent.
    config.data.synthetic = ml_collections.ConfigDict()
    config.data.synthetic.videos = 256  # captioned clips of coloured shapes moving across the frame
    config.data.synthetic.images = 256  # captioned stills (the joint-training images)
    config.data.synthetic.frames = 16  # frames per clip (at least what num_frames × frame_stride spans)
    config.data.synthetic.height = 0  # 0 = data.height
    config.data.synthetic.width = 0  # 0 = data.width
    config.data.synthetic.seed = 0

    config.batch_size = 8  # global examples per step (each: F frames + M images)
    config.num_steps = 100_000  # micro-batches (= optimizer updates × accumulate_steps)
    config.caption_dropout = 0.1  # probability of replacing a caption by '' (classifier-free guidance)

    # Diffusion (spec §2.4): DDPM linear betas 1e-4 → 0.02 over 1000 steps, ε-prediction.
    config.diffusion = ml_collections.ConfigDict()
    config.diffusion.num_train_timesteps = 1000
    config.diffusion.beta_schedule = "linear"  # 'linear' | 'scaled_linear'
    config.diffusion.beta_start = 1e-4
    config.diffusion.beta_end = 0.02
    config.diffusion.prediction_type = "epsilon"  # 'epsilon' | 'v_prediction'
    config.diffusion.min_snr_gamma = 0.0  # > 0: min-SNR-γ loss weighting (Hang et al. 2023), e.g. 5
    config.diffusion.noise_offset = 0.0  # > 0: offset noise (one normal per channel added × this)

    # Optimiser: AdamW, linear warmup then constant/cosine, global-norm clipping, accumulation.
    config.optim = ml_collections.ConfigDict()
    config.optim.learning_rate = 1e-4
    config.optim.warmup_steps = 1000  # optimizer updates
    config.optim.schedule = "constant"  # 'constant' | 'cosine' (to 0 at the last update)
    config.optim.weight_decay = 0.01
    config.optim.b1 = 0.9
    config.optim.b2 = 0.999
    config.optim.eps = 1e-8
    config.optim.clip_norm = 1.0  # global gradient norm; ≤ 0 disables
    config.optim.accumulate_steps = 1  # micro-batches per update (optax.MultiSteps)
    config.optim.trainable = "all"  # 'all' | 'temporal' (frozen spatial layers, no moments) | a regex

    config.ema_decay = 0.9999  # EMA of the trainable parameters, updated once per optimizer update
    config.max_bad_steps = 10  # stop after this many non-finite steps in a row (they are skipped)

    config.log_every = 50  # steps between metrics.jsonl / TensorBoard records
    config.checkpoint_every = 1000  # steps between (asynchronous) checkpoints
    config.keep_checkpoints = 3
    config.sample_every = 5000  # steps between preview videos from the EMA weights (0 = never)
    config.sample = ml_collections.ConfigDict()
    config.sample.prompt = "a teddy bear walking on the street, 2k, high quality"
    config.sample.steps = 50  # DDIM steps
    config.sample.guidance = 7.5  # classifier-free guidance scale
    return config
