//! The model's tensors, by role. Checkpoint tensor names (Hugging Face and original layouts)
//! live here and nowhere else: everything else asks for a [`TensorId`].

/// A tensor of one transformer layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerTensor {
    AttnNorm,
    QWeight,
    QBias,
    KWeight,
    KBias,
    VWeight,
    VBias,
    OWeight,
    OBias,
    Sinks,
    MlpNorm,
    RouterWeight,
    RouterBias,
    GateUpBlocks,
    GateUpScales,
    GateUpBias,
    DownBlocks,
    DownScales,
    DownBias,
}

/// A layer tensor's names: (tensor, Hugging Face suffix, original suffix, the rows of the
/// original's fused qkv it is), in the enum's order, so that row `t as usize` is `t`'s.
#[rustfmt::skip]
const LAYER_NAMES: [(LayerTensor, &str, &str, Option<QkvPart>); 19] = {
    use LayerTensor::*;
    use QkvPart::{K, Q, V};
    [
        (AttnNorm,     "input_layernorm.weight",          "attn.norm.scale",        None),
        (QWeight,      "self_attn.q_proj.weight",         "attn.qkv.weight",        Some(Q)),
        (QBias,        "self_attn.q_proj.bias",           "attn.qkv.bias",          Some(Q)),
        (KWeight,      "self_attn.k_proj.weight",         "attn.qkv.weight",        Some(K)),
        (KBias,        "self_attn.k_proj.bias",           "attn.qkv.bias",          Some(K)),
        (VWeight,      "self_attn.v_proj.weight",         "attn.qkv.weight",        Some(V)),
        (VBias,        "self_attn.v_proj.bias",           "attn.qkv.bias",          Some(V)),
        (OWeight,      "self_attn.o_proj.weight",         "attn.out.weight",        None),
        (OBias,        "self_attn.o_proj.bias",           "attn.out.bias",          None),
        (Sinks,        "self_attn.sinks",                 "attn.sinks",             None),
        (MlpNorm,      "post_attention_layernorm.weight", "mlp.norm.scale",         None),
        (RouterWeight, "mlp.router.weight",               "mlp.gate.weight",        None),
        (RouterBias,   "mlp.router.bias",                 "mlp.gate.bias",          None),
        (GateUpBlocks, "mlp.experts.gate_up_proj_blocks", "mlp.mlp1_weight.blocks", None),
        (GateUpScales, "mlp.experts.gate_up_proj_scales", "mlp.mlp1_weight.scales", None),
        (GateUpBias,   "mlp.experts.gate_up_proj_bias",   "mlp.mlp1_bias",          None),
        (DownBlocks,   "mlp.experts.down_proj_blocks",    "mlp.mlp2_weight.blocks", None),
        (DownScales,   "mlp.experts.down_proj_scales",    "mlp.mlp2_weight.scales", None),
        (DownBias,     "mlp.experts.down_proj_bias",      "mlp.mlp2_bias",          None),
    ]
};

impl LayerTensor {
    /// Every layer tensor, in the enum's (and the Hugging Face layout's) order.
    pub const ALL: [LayerTensor; 19] = {
        let mut all = [LayerTensor::AttnNorm; 19];
        let mut i = 0;
        while i < all.len() {
            all[i] = LAYER_NAMES[i].0;
            i += 1;
        }
        all
    };
}

impl LayerTensor {
    /// What the tensor is, which fixes its dtype rules and how it is uploaded.
    pub fn kind(self) -> TensorKind {
        use LayerTensor::*;
        match self {
            QWeight | KWeight | VWeight | OWeight | RouterWeight => TensorKind::Matrix,
            AttnNorm | MlpNorm => TensorKind::Norm,
            QBias | KBias | VBias | OBias | RouterBias => TensorKind::Bias,
            Sinks => TensorKind::Sinks,
            GateUpBlocks | DownBlocks => TensorKind::ExpertBlocks,
            GateUpScales | DownScales => TensorKind::ExpertScales,
            GateUpBias | DownBias => TensorKind::ExpertBias,
        }
    }

    /// The expert matrix a MoE tensor belongs to.
    pub fn expert_matrix(self) -> Option<ExpertMatrix> {
        use LayerTensor::*;
        match self {
            GateUpBlocks | GateUpScales | GateUpBias => Some(ExpertMatrix::GateUp),
            DownBlocks | DownScales | DownBias => Some(ExpertMatrix::Down),
            _ => None,
        }
    }
}

/// What a tensor is, independent of its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TensorKind {
    /// A BF16 weight matrix [out, in] (embedding and lm_head: [vocab, hidden]).
    Matrix,
    /// An RMSNorm gain [hidden].
    Norm,
    /// A bias vector [out].
    Bias,
    /// One attention-sink logit per query head.
    Sinks,
    /// MXFP4 blocks [E, out, in/32, 16].
    ExpertBlocks,
    /// E8M0 scales [E, out, in/32].
    ExpertScales,
    /// Expert biases [E, out].
    ExpertBias,
}

/// The two expert matrices of a MoE layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ExpertMatrix {
    /// [E, 2I, H] as [out, in]; rows interleave gate (even) and up (odd).
    GateUp,
    /// [E, H, I] as [out, in].
    Down,
}

impl ExpertMatrix {
    pub const ALL: [ExpertMatrix; 2] = [ExpertMatrix::GateUp, ExpertMatrix::Down];

    /// (blocks, scales, bias) of this matrix.
    pub fn tensors(self) -> [LayerTensor; 3] {
        match self {
            ExpertMatrix::GateUp => [
                LayerTensor::GateUpBlocks,
                LayerTensor::GateUpScales,
                LayerTensor::GateUpBias,
            ],
            ExpertMatrix::Down => [
                LayerTensor::DownBlocks,
                LayerTensor::DownScales,
                LayerTensor::DownBias,
            ],
        }
    }

    /// The dense BF16 tensor transformers saves for this matrix, [E, in, out].
    pub fn hf_dense_name(self, layer: usize) -> String {
        let suffix = match self {
            ExpertMatrix::GateUp => "gate_up_proj",
            ExpertMatrix::Down => "down_proj",
        };
        format!("model.layers.{layer}.mlp.experts.{suffix}")
    }
}

/// Which rows of the original fused `attn.qkv` a tensor takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QkvPart {
    /// Rows [0, q_dim).
    Q,
    /// Rows [q_dim, q_dim + kv_dim).
    K,
    /// Rows [q_dim + kv_dim, q_dim + 2 kv_dim).
    V,
}

/// Where a tensor lives in OpenAI's original layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginalName {
    pub name: String,
    /// Set for q/k/v: the tensor is a row range of the fused qkv tensor `name`.
    pub qkv: Option<QkvPart>,
}

/// Key prefixes of the Hugging Face layout (only lm_head has no `model.`).
pub const HF_PREFIXES: [&str; 2] = ["model.", "lm_head."];
/// Key prefixes of the original layout.
pub const ORIGINAL_PREFIXES: [&str; 4] = ["block.", "embedding.", "unembedding.", "norm."];

pub fn is_hf_name(name: &str) -> bool {
    HF_PREFIXES.iter().any(|p| name.starts_with(p))
}

pub fn is_original_name(name: &str) -> bool {
    ORIGINAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The name with its layer index replaced by `*` ("model.layers.*.mlp.router.weight"): the
/// prefix summary `inspect` prints.
pub fn name_pattern(name: &str) -> String {
    let mut out = Vec::new();
    let mut prev = "";
    for part in name.split('.') {
        let layered =
            matches!(prev, "layers" | "block") && part.bytes().all(|b| b.is_ascii_digit());
        out.push(if layered && !part.is_empty() {
            "*"
        } else {
            part
        });
        prev = part;
    }
    out.join(".")
}

/// A tensor of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorId {
    Embedding,
    FinalNorm,
    LmHead,
    Layer(usize, LayerTensor),
}

impl TensorId {
    /// The Hugging Face name (the canonical name in messages).
    pub fn hf_name(self) -> String {
        match self {
            TensorId::Embedding => "model.embed_tokens.weight".into(),
            TensorId::FinalNorm => "model.norm.weight".into(),
            TensorId::LmHead => "lm_head.weight".into(),
            TensorId::Layer(l, t) => {
                let suffix = LAYER_NAMES[t as usize].1;
                format!("model.layers.{l}.{suffix}")
            }
        }
    }

    /// The name in OpenAI's original layout: the module paths of `Transformer` in
    /// https://github.com/openai/gpt-oss/blob/main/gpt_oss/torch/model.py.
    pub fn original_name(self) -> OriginalName {
        let whole = |name: String| OriginalName { name, qkv: None };
        match self {
            TensorId::Embedding => whole("embedding.weight".into()),
            TensorId::FinalNorm => whole("norm.scale".into()),
            TensorId::LmHead => whole("unembedding.weight".into()),
            TensorId::Layer(l, t) => {
                let (_, _, suffix, qkv) = LAYER_NAMES[t as usize];
                OriginalName {
                    name: format!("block.{l}.{suffix}"),
                    qkv,
                }
            }
        }
    }

    pub fn kind(self) -> TensorKind {
        match self {
            TensorId::Embedding | TensorId::LmHead => TensorKind::Matrix,
            TensorId::FinalNorm => TensorKind::Norm,
            TensorId::Layer(_, t) => t.kind(),
        }
    }

    /// Every tensor a model with `layers` layers has, in load order: embedding, the layers in
    /// order, final norm, lm_head.
    pub fn all(layers: usize) -> Vec<TensorId> {
        let mut ids = vec![TensorId::Embedding];
        for l in 0..layers {
            ids.extend(LayerTensor::ALL.iter().map(|&t| TensorId::Layer(l, t)));
        }
        ids.push(TensorId::FinalNorm);
        ids.push(TensorId::LmHead);
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_hide_layer_indices() {
        assert_eq!(
            name_pattern("model.layers.17.mlp.router.weight"),
            "model.layers.*.mlp.router.weight"
        );
        assert_eq!(
            name_pattern("block.3.attn.qkv.weight"),
            "block.*.attn.qkv.weight"
        );
        assert_eq!(name_pattern("lm_head.weight"), "lm_head.weight");
    }

    #[test]
    fn name_table_rows_are_in_enum_order() {
        for (i, &(t, _, _, _)) in LAYER_NAMES.iter().enumerate() {
            assert_eq!(t as usize, i, "{t:?}");
        }
    }

    #[test]
    fn every_name_has_its_layout_prefix() {
        for id in TensorId::all(2) {
            assert!(is_hf_name(&id.hf_name()), "{id:?}");
            assert!(!is_original_name(&id.hf_name()), "{id:?}");
            assert!(is_original_name(&id.original_name().name), "{id:?}");
            assert!(!is_hf_name(&id.original_name().name), "{id:?}");
        }
    }
}
