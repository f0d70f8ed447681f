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

impl LayerTensor {
    pub const ALL: [LayerTensor; 19] = [
        LayerTensor::AttnNorm,
        LayerTensor::QWeight,
        LayerTensor::QBias,
        LayerTensor::KWeight,
        LayerTensor::KBias,
        LayerTensor::VWeight,
        LayerTensor::VBias,
        LayerTensor::OWeight,
        LayerTensor::OBias,
        LayerTensor::Sinks,
        LayerTensor::MlpNorm,
        LayerTensor::RouterWeight,
        LayerTensor::RouterBias,
        LayerTensor::GateUpBlocks,
        LayerTensor::GateUpScales,
        LayerTensor::GateUpBias,
        LayerTensor::DownBlocks,
        LayerTensor::DownScales,
        LayerTensor::DownBias,
    ];
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
        use LayerTensor::*;
        match self {
            TensorId::Embedding => "model.embed_tokens.weight".into(),
            TensorId::FinalNorm => "model.norm.weight".into(),
            TensorId::LmHead => "lm_head.weight".into(),
            TensorId::Layer(l, t) => {
                let suffix = match t {
                    AttnNorm => "input_layernorm.weight",
                    QWeight => "self_attn.q_proj.weight",
                    QBias => "self_attn.q_proj.bias",
                    KWeight => "self_attn.k_proj.weight",
                    KBias => "self_attn.k_proj.bias",
                    VWeight => "self_attn.v_proj.weight",
                    VBias => "self_attn.v_proj.bias",
                    OWeight => "self_attn.o_proj.weight",
                    OBias => "self_attn.o_proj.bias",
                    Sinks => "self_attn.sinks",
                    MlpNorm => "post_attention_layernorm.weight",
                    RouterWeight => "mlp.router.weight",
                    RouterBias => "mlp.router.bias",
                    GateUpBlocks => "mlp.experts.gate_up_proj_blocks",
                    GateUpScales => "mlp.experts.gate_up_proj_scales",
                    GateUpBias => "mlp.experts.gate_up_proj_bias",
                    DownBlocks => "mlp.experts.down_proj_blocks",
                    DownScales => "mlp.experts.down_proj_scales",
                    DownBias => "mlp.experts.down_proj_bias",
                };
                format!("model.layers.{l}.{suffix}")
            }
        }
    }
}
