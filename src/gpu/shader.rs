//! WGSL sources, embedded at build time, and the one preprocessing step they get.
//!
//! WGSL has no include. A kernel names a shared module on a line of its own,
//! `//!include mxfp4`, and [`compose`] pastes that module in once. Where a module has variants
//! by device feature, the name resolves to one of them: `reduce` becomes `reduce_subgroup` when
//! subgroups are in use and `reduce_workgroup` otherwise; `kv_cache` becomes `kv_cache_f16`
//! or `kv_cache_f32`; `mxfp4_decode` becomes `mxfp4_decode_f16bits` or `mxfp4_decode_lut`, and
//! `coop_weights` `coop_weights_f16bits` or `coop_weights_lut`.
//! Nothing else is rewritten: kernels are
//! specialised with WGSL `override` constants.
//!
//! For measuring a variant of a kernel without a rebuild, `OSS_WGPU_SHADER_DIR=DIR` makes a
//! file `DIR/NAME.wgsl` take the place of the embedded `NAME` (modules included); names
//! without such a file stay embedded. A development switch: it is logged, and a file that
//! cannot be read is an error naming it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

macro_rules! shader_table {
    ($($name:literal),* $(,)?) => {
        /// Every shaders/*.wgsl file, by file stem.
        pub const SHADERS: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../shaders/", $name, ".wgsl"))),)*
        ];
    };
}

shader_table![
    // shared modules
    "bf16",
    "mxfp4",
    "mxfp4_decode_f16bits",
    "mxfp4_decode_lut",
    "reduce_subgroup",
    "reduce_workgroup",
    "kv_cache_f16",
    "kv_cache_f32",
    "step",
    "topk",
    "moe_prefill_tile",
    "moe_tile_list",
    "moe_prefill_coop",
    "coop_tile",
    "coop_weights_f16bits",
    "coop_weights_lut",
    "f16_split",
    "attention",
    "moe_decode",
    "grid",
    "prefetch",
    // kernels
    "dequant_f32_mf4w",
    "embed_f32_bf16w",
    "rmsnorm_f32",
    "matvec_f32_bf16w",
    "rope_kv_append_f32",
    "attention_decode_f32",
    "attention_combine_f32",
    "moe_gate_up_f32_mf4w",
    "moe_down_f32_mf4w",
    "sample_f32",
    "matmul_f32_bf16w",
    "matmul_f16_bf16w",
    "attention_prefill_f32",
    "attention_prefill_f16",
    "moe_route_prefill",
    "moe_topk_prefill",
    "moe_gate_up_prefill_f32_mf4w",
    "moe_down_prefill_f32_mf4w",
    "moe_combine_prefill_f32",
    "row_shift_f32",
    "weight_shift_bf16w",
    "row_exp_mf4w",
    "moe_gate_up_prefill_f16_mf4w",
    "moe_down_prefill_f16_mf4w",
    "fill_random",
    "router_f32_bf16w",
    "router_topk_f32",
    "router_prefill_f32_bf16w",
    "bandwidth_read",
];

/// Which variant of a feature-dependent module a kernel gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShaderVariant {
    pub subgroups: bool,
    /// KV cache stored as f16 (needs SHADER_F16 on some drivers for pack2x16float).
    pub f16_kv: bool,
    /// MXFP4 blocks decoded into f16 bits with unpack2x16float (mxfp4_decode_f16bits and
    /// coop_weights_f16bits), not through a table (mxfp4_decode_lut, coop_weights_lut).
    pub f16_bits: bool,
}

impl From<crate::gpu::Precision> for ShaderVariant {
    fn from(p: crate::gpu::Precision) -> Self {
        ShaderVariant {
            subgroups: p.subgroups,
            f16_kv: p.kv == crate::gpu::KvChoice::F16,
            f16_bits: p.f16_bits,
        }
    }
}

impl ShaderVariant {
    pub const PORTABLE: ShaderVariant = ShaderVariant {
        subgroups: false,
        f16_kv: false,
        f16_bits: false,
    };
    /// Every combination a device can get (f16 bits only beside subgroups: neither is used on
    /// the portable path).
    pub const ALL: [ShaderVariant; 6] = [
        ShaderVariant::PORTABLE,
        ShaderVariant {
            subgroups: false,
            f16_kv: true,
            f16_bits: false,
        },
        ShaderVariant {
            subgroups: true,
            f16_kv: false,
            f16_bits: false,
        },
        ShaderVariant {
            subgroups: true,
            f16_kv: true,
            f16_bits: false,
        },
        ShaderVariant {
            subgroups: true,
            f16_kv: false,
            f16_bits: true,
        },
        ShaderVariant {
            subgroups: true,
            f16_kv: true,
            f16_bits: true,
        },
    ];

    fn resolve<'a>(&self, module: &'a str) -> std::borrow::Cow<'a, str> {
        match module {
            "reduce" if self.subgroups => "reduce_subgroup".into(),
            "reduce" => "reduce_workgroup".into(),
            "kv_cache" if self.f16_kv => "kv_cache_f16".into(),
            "kv_cache" => "kv_cache_f32".into(),
            "mxfp4_decode" if self.f16_bits => "mxfp4_decode_f16bits".into(),
            "mxfp4_decode" => "mxfp4_decode_lut".into(),
            "coop_weights" if self.f16_bits => "coop_weights_f16bits".into(),
            "coop_weights" => "coop_weights_lut".into(),
            m => m.into(),
        }
    }
}

pub fn raw_source(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// `name`'s source: `dir`'s file `name.wgsl` where `dir` is given and has one, else the
/// embedded one. Each file is read once a process (and kept for it).
fn source(dir: Option<&Path>, name: &str) -> Result<&'static str, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static READ: OnceLock<Mutex<HashMap<PathBuf, &'static str>>> = OnceLock::new();
    let embedded = raw_source(name).ok_or_else(|| format!("unknown shader '{name}'"))?;
    let Some(dir) = dir else {
        return Ok(embedded);
    };
    let path = dir.join(format!("{name}.wgsl"));
    let mut read = READ
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = read.get(&path) {
        return Ok(s);
    }
    if !path.exists() {
        return Ok(embedded);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("OSS_WGPU_SHADER_DIR: {}: {e}", path.display()))?;
    log::warn!(
        "shader {name} from {} (OSS_WGPU_SHADER_DIR)",
        path.display()
    );
    let text: &'static str = Box::leak(text.into_boxed_str());
    read.insert(path, text);
    Ok(text)
}

/// Whether `name` is a shared module (included by kernels) rather than a kernel.
pub fn is_module(name: &str) -> bool {
    matches!(
        name,
        "bf16"
            | "mxfp4"
            | "mxfp4_decode_f16bits"
            | "mxfp4_decode_lut"
            | "reduce_subgroup"
            | "reduce_workgroup"
            | "kv_cache_f16"
            | "kv_cache_f32"
            | "step"
            | "topk"
            | "moe_prefill_tile"
            | "moe_tile_list"
            | "moe_prefill_coop"
            | "coop_tile"
            | "coop_weights_f16bits"
            | "coop_weights_lut"
            | "f16_split"
            | "attention"
            | "moe_decode"
            | "grid"
            | "prefetch"
    )
}

/// Whether `name` (kernel or module) computes on cooperative matrices: it needs SHADER_F16,
/// subgroups and wgpu's experimental cooperative-matrix extension, so only a device with
/// [`crate::gpu::Precision::coop`] builds it.
pub fn needs_coop(name: &str) -> bool {
    matches!(
        name,
        "coop_tile"
            | "coop_weights_f16bits"
            | "coop_weights_lut"
            | "moe_prefill_coop"
            | "moe_gate_up_prefill_f16_mf4w"
            | "moe_down_prefill_f16_mf4w"
            | "matmul_f16_bf16w"
            | "attention_prefill_f16"
            | "row_shift_f32"
    )
}

/// The complete WGSL of kernel `name` for `variant`, includes resolved.
pub fn compose(name: &str, variant: ShaderVariant) -> Result<String, String> {
    let dir = std::env::var_os("OSS_WGPU_SHADER_DIR").map(PathBuf::from);
    compose_from(dir.as_deref(), name, variant)
}

/// [`compose`] with the files of `dir` (OSS_WGPU_SHADER_DIR's role) in place of the embedded
/// sources they name.
pub fn compose_from(
    dir: Option<&Path>,
    name: &str,
    variant: ShaderVariant,
) -> Result<String, String> {
    let mut out = String::new();
    let mut seen = HashSet::new();
    append(dir, name, variant, &mut out, &mut seen)?;
    Ok(out)
}

fn append(
    dir: Option<&Path>,
    name: &str,
    variant: ShaderVariant,
    out: &mut String,
    seen: &mut HashSet<String>,
) -> Result<(), String> {
    let resolved = variant.resolve(name).into_owned();
    if !seen.insert(resolved.clone()) {
        return Ok(());
    }
    let src = source(dir, &resolved)?;
    for line in src.lines() {
        if let Some(module) = line.trim().strip_prefix("//!include ") {
            append(dir, module.trim(), variant, out, seen)
                .map_err(|e| format!("{resolved}.wgsl: {e}"))?;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(())
}
