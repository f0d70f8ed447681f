//! WGSL sources, embedded at build time, and the one preprocessing step they get.
//!
//! WGSL has no include. A kernel names a shared module on a line of its own,
//! `//!include mxfp4`, and [`compose`] pastes that module in once. Where a module has variants
//! by device feature, the name resolves to one of them: `reduce` becomes `reduce_subgroup` when
//! subgroups are in use and `reduce_workgroup` otherwise. Nothing else is rewritten: kernels are
//! specialised with WGSL `override` constants.

use std::collections::HashSet;

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
    "reduce_subgroup",
    "reduce_workgroup",
    // kernels
    "dequant_f32_mf4w",
];

/// Which variant of a feature-dependent module a kernel gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShaderVariant {
    pub subgroups: bool,
}

impl ShaderVariant {
    pub const PORTABLE: ShaderVariant = ShaderVariant { subgroups: false };
    pub const ALL: [ShaderVariant; 2] = [
        ShaderVariant { subgroups: false },
        ShaderVariant { subgroups: true },
    ];

    fn resolve<'a>(&self, module: &'a str) -> std::borrow::Cow<'a, str> {
        match module {
            "reduce" if self.subgroups => "reduce_subgroup".into(),
            "reduce" => "reduce_workgroup".into(),
            m => m.into(),
        }
    }
}

pub fn raw_source(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Whether `name` is a shared module (included by kernels) rather than a kernel.
pub fn is_module(name: &str) -> bool {
    matches!(
        name,
        "bf16" | "mxfp4" | "reduce_subgroup" | "reduce_workgroup"
    )
}

/// The complete WGSL of kernel `name` for `variant`, includes resolved.
pub fn compose(name: &str, variant: ShaderVariant) -> Result<String, String> {
    let mut out = String::new();
    let mut seen = HashSet::new();
    append(name, variant, &mut out, &mut seen)?;
    Ok(out)
}

fn append(
    name: &str,
    variant: ShaderVariant,
    out: &mut String,
    seen: &mut HashSet<String>,
) -> Result<(), String> {
    let resolved = variant.resolve(name).into_owned();
    if !seen.insert(resolved.clone()) {
        return Ok(());
    }
    let src = raw_source(&resolved).ok_or_else(|| format!("unknown shader '{resolved}'"))?;
    for line in src.lines() {
        if let Some(module) = line.trim().strip_prefix("//!include ") {
            append(module.trim(), variant, out, seen)
                .map_err(|e| format!("{resolved}.wgsl: {e}"))?;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(())
}
