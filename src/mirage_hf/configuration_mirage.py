"""MIRAGE model configuration."""

from __future__ import annotations

from transformers import PretrainedConfig

LAYER_NORM_TYPES = ("with_bias", "bias_free")
SPD_GEOMETRIES = ("covariance", "log_euclidean")


class MirageConfig(PretrainedConfig):
    r"""
    Configuration of a [`MirageForImageRestoration`] model: a 4-level U-Net of MIRAGE blocks, each of
    which splits its channels in three (attention, dynamic gated convolution, channel MLP) and fuses
    them, trained with L1 + Fourier loss + an SPD contrastive regulariser.

    The defaults are MIRAGE-Tiny as the official code builds it; `MirageConfig.small()` gives MIRAGE-Small.

    Args:
        num_channels (`int`, defaults to 3): image channels in and out.
        embed_dim (`int`, defaults to 24): width of level 1; levels 2-4 are 2×, 4×, 8× this.
            Must be divisible by 3 (every block splits its channels in three equal branches).
        depths (`list[int]`, defaults to `[3, 5, 5, 7]`): blocks in encoder levels 1-3 and the latent level;
            decoder levels 3-1 reuse the encoder counts.
        num_refinement_blocks (`int`, defaults to 2): blocks after decoder level 1 (at 2× width).
        num_heads (`list[int]`, defaults to `[1, 2, 4, 8]`): attention heads per level. The attention branch
            of a block at width C works on C // 3 channels, which must be divisible by its heads.
        ffn_expansion_factor (`float`, defaults to 2.0): hidden width of the feed-forward network.
        bias (`bool`, defaults to `False`): bias in the convolutions of the U-Net.
        layer_norm_type (`str`, defaults to `"with_bias"`): `"with_bias"` (LayerNorm over channels) or
            `"bias_free"` (Restormer's scale-only variant, no mean subtraction).
        gated_expansion_ratio (`float`, defaults to 8/3): hidden width of the gated-conv branch.
        gated_kernel_size (`int`, defaults to 7): depthwise kernel size in the gated-conv branch.
        gated_conv_ratio (`float`, defaults to 1.0): fraction of the branch's channels that are convolved.
        dynamic_conv (`bool`, defaults to `True`): predict a per-sample depthwise kernel from the pooled
            features (the official model) instead of a static depthwise convolution.
        drop_path_rate (`float`, defaults to 0.1): stochastic depth in the gated-conv branch (training only).
        spd_shallow_channels (`int`, defaults to 12): channels of the shallow features whose covariance is taken.
        spd_latent_channels (`int`, defaults to 24): channels of the latent features whose covariance is taken.
        spd_projection_dim (`int`, defaults to 64): size of the projected SPD embeddings.
        spd_geometry (`str`, defaults to `"covariance"`): `"covariance"` flattens the raw covariance (the
            official code); `"log_euclidean"` flattens its matrix logarithm (log-Euclidean metric).
        spd_eps (`float`, defaults to 1e-5): ridge added to each covariance so it is positive definite.
        contrastive_temperature (`float`, defaults to 0.1): InfoNCE temperature.
        contrastive_loss_weight (`float`, defaults to 0.01): weight of the SPD contrastive loss (the official
            code uses 0.01, the paper states 0.05).
        fourier_loss_weight (`float`, defaults to 0.1): weight of the L1 loss on the rfft2 real and imaginary parts.
    """

    model_type = "mirage"

    def __init__(
        self,
        num_channels: int = 3,
        embed_dim: int = 24,
        depths: list[int] | tuple[int, ...] = (3, 5, 5, 7),
        num_refinement_blocks: int = 2,
        num_heads: list[int] | tuple[int, ...] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.0,
        bias: bool = False,
        layer_norm_type: str = "with_bias",
        gated_expansion_ratio: float = 8 / 3,
        gated_kernel_size: int = 7,
        gated_conv_ratio: float = 1.0,
        dynamic_conv: bool = True,
        drop_path_rate: float = 0.1,
        spd_shallow_channels: int = 12,
        spd_latent_channels: int = 24,
        spd_projection_dim: int = 64,
        spd_geometry: str = "covariance",
        spd_eps: float = 1e-5,
        contrastive_temperature: float = 0.1,
        contrastive_loss_weight: float = 0.01,
        fourier_loss_weight: float = 0.1,
        **kwargs,
    ):
        self.num_channels = num_channels
        self.embed_dim = embed_dim
        self.depths = list(depths)
        self.num_refinement_blocks = num_refinement_blocks
        self.num_heads = list(num_heads)
        self.ffn_expansion_factor = ffn_expansion_factor
        self.bias = bias
        self.layer_norm_type = layer_norm_type
        self.gated_expansion_ratio = gated_expansion_ratio
        self.gated_kernel_size = gated_kernel_size
        self.gated_conv_ratio = gated_conv_ratio
        self.dynamic_conv = dynamic_conv
        self.drop_path_rate = drop_path_rate
        self.spd_shallow_channels = spd_shallow_channels
        self.spd_latent_channels = spd_latent_channels
        self.spd_projection_dim = spd_projection_dim
        self.spd_geometry = spd_geometry
        self.spd_eps = spd_eps
        self.contrastive_temperature = contrastive_temperature
        self.contrastive_loss_weight = contrastive_loss_weight
        self.fourier_loss_weight = fourier_loss_weight
        super().__init__(**kwargs)
        self.validate_architecture()

    @classmethod
    def tiny(cls, **kwargs) -> "MirageConfig":
        """MIRAGE-Tiny (`net/mirage_tiny.py`): 6,207,412 parameters with the SPD head."""
        return cls(embed_dim=24, depths=[3, 5, 5, 7], num_refinement_blocks=2, **kwargs)

    @classmethod
    def small(cls, **kwargs) -> "MirageConfig":
        """MIRAGE-Small (`net/mirage_small.py`): 9,678,983 parameters with the SPD head."""
        return cls(embed_dim=30, depths=[3, 5, 5, 7], num_refinement_blocks=3, **kwargs)

    @property
    def pad_multiple(self) -> int:
        """Inputs are padded to a multiple of this (three 2× downsamplings)."""
        return 2 ** (len(self.depths) - 1)

    def validate_architecture(self) -> None:
        """Refuse, with the rule that broke, any configuration the network cannot be built from."""
        if len(self.depths) != 4 or len(self.num_heads) != 4:
            raise ValueError(
                f"MIRAGE has 4 levels: depths and num_heads need 4 entries each, got {self.depths} and {self.num_heads}"
            )
        if self.embed_dim <= 0 or self.embed_dim % 3 != 0:
            raise ValueError(
                f"embed_dim={self.embed_dim} must be a positive multiple of 3: every block splits its channels "
                "into three equal branches (attention, gated conv, MLP) whose outputs are summed in the fusion"
            )
        # (level name, block width, heads) for every kind of block the network builds.
        level_widths = [
            ("level 1", self.embed_dim, self.num_heads[0]),
            ("level 2", 2 * self.embed_dim, self.num_heads[1]),
            ("level 3", 4 * self.embed_dim, self.num_heads[2]),
            ("latent level", 8 * self.embed_dim, self.num_heads[3]),
            ("decoder level 1 / refinement", 2 * self.embed_dim, self.num_heads[0]),
        ]
        for name, width, heads in level_widths:
            if heads <= 0 or (width // 3) % heads != 0:
                raise ValueError(
                    f"{name}: the attention branch has {width // 3} channels (width {width} // 3), "
                    f"which is not divisible by num_heads={heads}"
                )
        if self.layer_norm_type not in LAYER_NORM_TYPES:
            raise ValueError(f"layer_norm_type must be one of {LAYER_NORM_TYPES}, got {self.layer_norm_type!r}")
        if self.spd_geometry not in SPD_GEOMETRIES:
            raise ValueError(f"spd_geometry must be one of {SPD_GEOMETRIES}, got {self.spd_geometry!r}")
        if self.gated_kernel_size % 2 != 1:
            raise ValueError(f"gated_kernel_size must be odd to keep the size, got {self.gated_kernel_size}")
        gated_width = self.embed_dim // 3
        hidden = int(self.gated_expansion_ratio * gated_width)
        conv_channels = int(self.gated_conv_ratio * gated_width)
        if not 0 < conv_channels <= hidden:
            raise ValueError(
                f"gated branch: {conv_channels} convolved channels must be between 1 and its hidden width {hidden} "
                "(check gated_conv_ratio and gated_expansion_ratio)"
            )
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")


__all__ = ["MirageConfig"]
