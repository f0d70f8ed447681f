//! Every shader, parsed and validated by naga and translated to SPIR-V, MSL, HLSL and GLSL,
//! without a GPU: this is how Metal and DX12 breakage is caught on Linux. Kernels are checked
//! in every variant (portable and subgroup); shared modules through every kernel that includes
//! them and on their own. A failure prints the source location.

mod common;

use naga::valid::{Capabilities, ValidationFlags, Validator};
use oss_wgpu::gpu::shader::{self, ShaderVariant, SHADERS};

/// Declarations that some modules leave for their including kernel.
const MODULE_PRELUDE: &str = concat!(
    "override REDUCE_SIZE: u32 = 64u;\nconst K_CACHE_BINDING: u32 = 10u;\nconst V_CACHE_BINDING: u32 = 11u;\n",
    // What moe_prefill_tile asks of the kernel that includes it.
    "@group(0) @binding(0) var<storage, read> blocks: array<u32>;\n",
    "@group(0) @binding(1) var<storage, read> scales: array<u32>;\n",
    "@group(0) @binding(2) var<storage, read> offsets: array<u32>;\n",
    "@group(0) @binding(3) var<storage, read> tiles: array<vec2<u32>>;\n",
    "@group(0) @binding(4) var<storage, read> tile_count: array<u32>;\n",
    "fn moe_tile_x(start: u32, m: u32, k: u32) -> f32 { return f32(start + m + k); }\n",
);

/// The portable variant must need nothing beyond core WGSL; the others exactly their feature.
fn capabilities(variant: ShaderVariant) -> Capabilities {
    let mut caps = Capabilities::empty();
    if variant.subgroups {
        caps |= Capabilities::SUBGROUP | Capabilities::SUBGROUP_BARRIER;
    }
    if variant.f16_kv {
        caps |= Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    }
    caps
}

fn check(name: &str, source: &str, variant: ShaderVariant) -> Result<(), String> {
    let path = format!("shaders/{name}.wgsl ({variant:?}, includes expanded)");
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| e.emit_to_string_with_path(source, &path))?;
    let info = Validator::new(ValidationFlags::all(), capabilities(variant))
        .validate(&module)
        .map_err(|e| e.emit_to_string_with_path(source, &path))?;

    // Backends need override constants resolved; their defaults stand in for pipeline values.
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        None,
        &naga::back::PipelineConstants::default(),
    )
    .map_err(|e| format!("{path}: overrides: {e}"))?;

    naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None)
        .map_err(|e| format!("{path}: SPIR-V: {e}"))?;

    let msl_options = naga::back::msl::Options {
        lang_version: (2, 4),
        ..Default::default()
    };
    naga::back::msl::write_string(
        &module,
        &info,
        &msl_options,
        &naga::back::msl::PipelineOptions::default(),
    )
    .map_err(|e| format!("{path}: MSL: {e}"))?;

    let hlsl_options = naga::back::hlsl::Options {
        shader_model: naga::back::hlsl::ShaderModel::V6_2,
        ..Default::default()
    };
    let pipeline_options = naga::back::hlsl::PipelineOptions::default();
    let mut hlsl = String::new();
    naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &pipeline_options)
        .write(&module, &info, None)
        .map_err(|e| format!("{path}: HLSL: {e}"))?;

    // GLSL (the gl backend) has no subgroup path in naga here; the portable variant must work.
    if !variant.subgroups {
        for ep in &module.entry_points {
            let options = naga::back::glsl::Options {
                version: naga::back::glsl::Version::Desktop(430),
                ..Default::default()
            };
            let pipeline_options = naga::back::glsl::PipelineOptions {
                shader_stage: ep.stage,
                entry_point: ep.name.clone(),
                multiview: None,
            };
            let mut glsl = String::new();
            naga::back::glsl::Writer::new(
                &mut glsl,
                &module,
                &info,
                &options,
                &pipeline_options,
                naga::proc::BoundsCheckPolicies::default(),
            )
            .and_then(|mut w| w.write())
            .map_err(|e| format!("{path}: GLSL ({}): {e}", ep.name))?;
        }
    }
    Ok(())
}

#[test]
fn every_shader_validates_and_translates() {
    let mut failures = Vec::new();
    for (name, _) in SHADERS {
        if shader::is_module(name) {
            let src = format!(
                "{MODULE_PRELUDE}{}",
                shader::compose(name, ShaderVariant::PORTABLE).unwrap()
            );
            let variant = ShaderVariant {
                subgroups: name.contains("subgroup"),
                f16_kv: name.contains("f16"),
            };
            if let Err(e) = check(name, &src, variant) {
                failures.push(e);
            }
            continue;
        }
        for variant in ShaderVariant::ALL {
            match shader::compose(name, variant) {
                Ok(src) => {
                    if let Err(e) = check(name, &src, variant) {
                        failures.push(e);
                    }
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every .wgsl file in shaders/ is embedded (so none escapes validation), and vice versa.
#[test]
fn shader_table_matches_the_directory() {
    let dir = common::repo_path("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "wgsl")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    on_disk.sort();
    let mut table: Vec<String> = SHADERS.iter().map(|(n, _)| n.to_string()).collect();
    table.sort();
    assert_eq!(on_disk, table, "shaders/ and gpu::shader::SHADERS disagree");
}

/// Each kernel's Rust parameter struct has the size naga computes for the WGSL `Params`.
#[test]
fn params_structs_agree_with_wgsl() {
    for &(name, rust_size) in oss_wgpu::kernels::PARAMS_SIZES {
        let src = shader::compose(name, ShaderVariant::PORTABLE).unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (handle, _) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Params"))
            .unwrap_or_else(|| panic!("{name}.wgsl has no struct Params"));
        let wgsl_size = layouter[handle].size as usize;
        assert_eq!(
            wgsl_size, rust_size,
            "{name}: WGSL Params is {wgsl_size} bytes, Rust Params is {rust_size}"
        );
    }
}
