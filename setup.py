"""sslmetric: personalised item-to-item similarity metrics learned from implicit feedback."""

import setuptools

# Lower bounds are the versions the test suite was run with (see README, "Versions").
INSTALL_REQUIRES = [
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "chex>=0.1.92",
    "absl-py>=2.5.1",
    "numpy>=2.4",
    "pandas>=3.1",
    "ml-collections>=1.1.0",
    "tqdm>=4.70",
    "matplotlib>=3.11",
    "platformdirs>=4.14",
    # Title-text channel: MiniLM-L6 run in JAX from safetensors weights.
    "tokenizers>=0.23",
    "safetensors>=0.8",
]

EXTRAS_REQUIRE = {
    "dev": [
        "pytest>=9.2",
        "pytest-timeout>=2.4",
        "scipy>=1.17",
    ],
    # Optional TFDS source; pulls TensorFlow (+1.4 GB) to generate `movielens`.
    "tfds": ["tensorflow-datasets"],
}

setuptools.setup(
    name="sslmetric",
    version="0.1.0",
    description=(
        "Personalised item-to-item similarity metrics from implicit feedback (JAX)."
    ),
    packages=setuptools.find_packages(include=["sslmetric", "sslmetric.*"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
