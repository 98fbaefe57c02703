"""lavie_jax: LaVie cascaded text-to-video latent diffusion in JAX/Flax NNX."""

from setuptools import find_packages, setup

setup(
    name="lavie_jax",
    version="0.1.0",
    description="LaVie text-to-video latent diffusion (base, interpolation, VSR) in JAX/Flax NNX",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["lavie_jax", "lavie_jax.*"]),
    include_package_data=True,
    package_data={"lavie_jax": ["assets/**/*"]},
    install_requires=[
        "jax>=0.10,<0.13",
        "flax>=0.12,<0.13",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "transformers>=4.40,<6",
        "grain>=0.2.10",
        "ml_collections>=1.0",
        "tensorflow-datasets>=4.9.9",
        "safetensors>=0.4",
        "numpy>=1.26",
        "tqdm>=4.66",
        "imageio>=2.34",
        "imageio-ffmpeg>=0.5",
        "av>=12",
        "pillow>=10",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "torch==2.13.0",
            "diffusers>=0.30",
            "rotary_embedding_torch>=0.6",
            "einops>=0.7",
            "ruff>=0.6",
        ],
        "convert": ["torch==2.13.0"],
    },
)
