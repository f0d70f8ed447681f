//! Every shader, parsed and validated by naga and translated to SPIR-V, MSL, HLSL and GLSL,
//! without a GPU: this is how Metal and DX12 breakage is caught on Linux. Kernels are checked
//! in every variant (portable and subgroup); shared modules through every kernel that includes
//! them and on their own. A failure prints the source location. Each kernel module's
//! declarations (its `Params` layout and binding table, and `Step`) are checked against the
//! WGSL through naga's reflection.

mod common;

use naga::valid::{Capabilities, ValidationFlags, Validator};
use oss_wgpu::gpu::shader::{self, ShaderVariant, SHADERS};
use oss_wgpu::kernels::{Access, Kernel, Layout, KERNELS, STEP};

/// Declarations that some modules leave for their including kernel.
const MODULE_PRELUDE: &str =
    "override REDUCE_SIZE: u32 = 64u;\nconst K_CACHE_BINDING: u32 = 10u;\nconst V_CACHE_BINDING: u32 = 11u;\n";

/// What the expert-weight modules ask of their including kernel.
fn weights_prelude(module: &str) -> &'static str {
    match module {
        "moe_decode" => concat!(
            "@group(0) @binding(3) var<storage, read> blocks: array<vec4<u32>>;\n",
            "@group(0) @binding(4) var<storage, read> scales: array<u32>;\n",
            "fn moe_x(i: u32) -> vec4<f32> { return vec4<f32>(f32(i)); }\n",
        ),
        "prefetch" => "@group(0) @binding(0) var<storage, read> prefetch_src: array<vec4<u32>>;\n",
        _ => MOE_TILE_PRELUDE,
    }
}

/// What moe_prefill_tile asks of the kernel that includes it (harmless to the others).
const MOE_TILE_PRELUDE: &str = concat!(
    "@group(0) @binding(0) var<storage, read> blocks: array<u32>;\n",
    "@group(0) @binding(1) var<storage, read> scales: array<u32>;\n",
    "@group(0) @binding(2) var<storage, read> offsets: array<u32>;\n",
    "@group(0) @binding(3) var<storage, read> tiles: array<vec2<u32>>;\n",
    "@group(0) @binding(4) var<storage, read> tile_count: array<u32>;\n",
    "fn moe_tile_x(start: u32, m: u32, k: u32) -> f32 { return f32(start + m + k); }\n",
);

/// What a cooperative-matrix module asks of its including kernel (placed after the `enable`
/// lines).
fn coop_prelude(module: &str) -> &'static str {
    match module {
        "coop_tile" | "coop_weights_lut" | "coop_weights_f16bits" => {
            "fn coop_out(m: u32, n: u32, v: vec2<f32>) {}\n"
        }
        "moe_prefill_coop" => concat!(
            "@group(0) @binding(5) var<storage, read> row_exps: array<u32>;\n",
            "alias MoeX = vec4<f32>;\n",
            "fn moe_coop_x4(start: u32, m: u32, k: u32) -> vec4<f32> { return vec4<f32>(f32(start + m + k)); }\n",
            "fn moe_coop_parts(v: vec4<f32>) -> CoopX4 { return coop_split_x4(v); }\n",
            "fn moe_coop_out(t: CoopTile, m: u32, n: u32, v: vec2<f32>) {}\n",
        ),
        _ => "",
    }
}

/// The portable variant must need nothing beyond core WGSL; the others exactly their feature;
/// the cooperative-matrix kernels also f16 and cooperative matrices.
fn capabilities(variant: ShaderVariant, coop: bool) -> Capabilities {
    let mut caps = Capabilities::empty();
    if coop {
        caps |= Capabilities::COOPERATIVE_MATRIX | Capabilities::SHADER_FLOAT16;
    }
    if variant.subgroups {
        caps |= Capabilities::SUBGROUP | Capabilities::SUBGROUP_BARRIER;
    }
    if variant.f16_kv || variant.f16_bits {
        caps |= Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    }
    caps
}

fn check(name: &str, source: &str, variant: ShaderVariant) -> Result<(), String> {
    let path = format!("shaders/{name}.wgsl ({variant:?}, includes expanded)");
    let coop = shader::needs_coop(name);
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| e.emit_to_string_with_path(source, &path))?;
    let info = Validator::new(ValidationFlags::all(), capabilities(variant, coop))
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
    // Cooperative-matrix kernels run where the device grants wgpu's experimental extension,
    // which is Vulkan only today; naga's other backends do not take 16x16 matrices.
    if coop {
        return Ok(());
    }

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
            let composed = shader::compose(name, ShaderVariant::PORTABLE).unwrap();
            // `enable` directives come before every declaration.
            let (enables, body): (Vec<&str>, Vec<&str>) =
                composed.lines().partition(|l| l.starts_with("enable "));
            let coop_prelude = coop_prelude(name);
            let src = format!(
                "{}\n{MODULE_PRELUDE}{}{coop_prelude}{}",
                enables.join("\n"),
                weights_prelude(name),
                body.join("\n")
            );
            let variant = ShaderVariant {
                subgroups: name.contains("subgroup") || shader::needs_coop(name),
                f16_kv: name.contains("f16"),
                f16_bits: name.contains("f16bits"),
            };
            if let Err(e) = check(name, &src, variant) {
                failures.push(e);
            }
            continue;
        }
        for variant in ShaderVariant::ALL {
            // The cooperative-matrix kernels are built only on devices with subgroups.
            if shader::needs_coop(name) && !variant.subgroups {
                continue;
            }
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

/// The Rust spelling of a WGSL type, as `kernels::Field::ty` writes it.
fn rust_type(module: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
    use naga::{ArraySize, ScalarKind, TypeInner};
    let scalar = |s: &naga::Scalar| match (s.kind, s.width) {
        (ScalarKind::Uint, 4) => "u32".to_string(),
        (ScalarKind::Sint, 4) => "i32".to_string(),
        (ScalarKind::Float, 4) => "f32".to_string(),
        _ => format!("{s:?}"),
    };
    match &module.types[ty].inner {
        TypeInner::Scalar(s) => scalar(s),
        TypeInner::Vector { size, scalar: s } => format!("[{}; {}]", scalar(s), *size as u8),
        TypeInner::Array {
            base,
            size: ArraySize::Constant(n),
            ..
        } => format!("[{}; {n}]", rust_type(module, *base)),
        other => format!("{other:?}"),
    }
}

/// Differences between the Rust layout of a uniform struct and the WGSL struct of that name.
fn layout_mismatches(shader: &str, module: &naga::Module, rust: &Layout) -> Vec<String> {
    let what = format!("{shader}.wgsl struct {}", rust.name);
    let Some((handle, ty)) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(rust.name))
    else {
        return vec![format!("{what}: not in the shader")];
    };
    let naga::TypeInner::Struct { members, .. } = &ty.inner else {
        return vec![format!("{what}: not a struct")];
    };
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    let mut bad = Vec::new();
    let wgsl_size = layouter[handle].size as usize;
    if wgsl_size != rust.size {
        bad.push(format!(
            "{what}: WGSL {wgsl_size} bytes, Rust {} bytes",
            rust.size
        ));
    }
    let wgsl: Vec<(String, usize, String)> = members
        .iter()
        .map(|m| {
            let name = m.name.clone().unwrap_or_default();
            (name, m.offset as usize, rust_type(module, m.ty))
        })
        .collect();
    let rust_fields: Vec<(String, usize, String)> = rust
        .fields
        .iter()
        .map(|f| (f.name.to_string(), f.offset, f.ty.replace(' ', "")))
        .collect();
    let wgsl_cmp: Vec<_> = wgsl
        .iter()
        .map(|(n, o, t)| (n.clone(), *o, t.replace(' ', "")))
        .collect();
    if wgsl_cmp != rust_fields {
        bad.push(format!(
            "{what}: fields (name, offset, type) differ\n  WGSL: {wgsl:?}\n  Rust: {rust_fields:?}"
        ));
    }
    bad
}

/// Differences between a kernel's declared bindings and the shader's group-0 globals.
fn binding_mismatches(
    kernel: &Kernel,
    module: &naga::Module,
    variant: ShaderVariant,
) -> Vec<String> {
    let mut wgsl: Vec<(u32, String, Access)> = Vec::new();
    let mut bad = Vec::new();
    for (_, g) in module.global_variables.iter() {
        let Some(rb) = &g.binding else { continue };
        let name = g.name.clone().unwrap_or_default();
        if rb.group != 0 {
            bad.push(format!(
                "{}.wgsl: '{name}' is in group {}",
                kernel.shader, rb.group
            ));
        }
        let access = match g.space {
            naga::AddressSpace::Uniform => Access::Uniform,
            naga::AddressSpace::Storage { access }
                if access.contains(naga::StorageAccess::STORE) =>
            {
                Access::ReadWrite
            }
            naga::AddressSpace::Storage { .. } => Access::Read,
            other => {
                bad.push(format!(
                    "{}.wgsl: '{name}' in address space {other:?}",
                    kernel.shader
                ));
                continue;
            }
        };
        wgsl.push((rb.binding, name, access));
    }
    wgsl.sort_by_key(|b| b.0);
    let rust: Vec<(u32, String, Access)> = kernel
        .bindings
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32, b.name.to_string(), b.access))
        .collect();
    if wgsl != rust {
        bad.push(format!(
            "{}.wgsl ({variant:?}): bindings (index, name, access) differ\n  WGSL: {wgsl:?}\n  Rust: {rust:?}",
            kernel.shader
        ));
    }
    bad
}

/// Every kernel module's declarations against its shader, in every variant: the `Params`
/// struct (size, and each field's name, offset and type), every binding's index, name and
/// access, and `Step` against shaders/step.wgsl. The binding table is the one each kernel's
/// `Bindings` builds its bind group from (see the `kernel!` macro in src/kernels/mod.rs).
#[test]
fn params_structs_agree_with_wgsl() {
    let mut failures = Vec::new();
    for kernel in KERNELS {
        for variant in ShaderVariant::ALL {
            if shader::needs_coop(kernel.shader) && !variant.subgroups {
                continue;
            }
            let src = shader::compose(kernel.shader, variant).unwrap();
            let module = naga::front::wgsl::parse_str(&src).unwrap();
            failures.extend(layout_mismatches(kernel.shader, &module, &kernel.params));
            failures.extend(binding_mismatches(kernel, &module, variant));
            if kernel.bindings.iter().any(|b| b.name == "step") {
                failures.extend(layout_mismatches(kernel.shader, &module, &STEP));
            }
        }
    }
    let step = naga::front::wgsl::parse_str(shader::raw_source("step").unwrap()).unwrap();
    failures.extend(layout_mismatches("step", &step, &STEP));
    failures.sort();
    failures.dedup();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every kernel shader has exactly one kernel module declaring it, of the same name.
#[test]
fn every_kernel_shader_is_declared_once() {
    let mut declared: Vec<&str> = KERNELS.iter().map(|k| k.shader).collect();
    declared.sort();
    let mut shaders: Vec<&str> = SHADERS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !shader::is_module(n))
        .collect();
    shaders.sort();
    assert_eq!(
        declared, shaders,
        "kernels::KERNELS and the kernel shaders disagree"
    );
}

/// OSS_WGPU_SHADER_DIR's files stand in for the embedded sources they name, modules included,
/// and the rest stay embedded; a file that cannot be read is an error naming it.
#[test]
fn a_shader_dir_replaces_only_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rmsnorm_f32.wgsl"),
        "// the variant\n//!include bf16\n",
    )
    .unwrap();
    let v = ShaderVariant::PORTABLE;
    let got = shader::compose_from(Some(dir.path()), "rmsnorm_f32", v).unwrap();
    let bf16 = shader::raw_source("bf16").unwrap();
    assert_eq!(got, format!("// the variant\n{}", lines(bf16)));
    // A kernel the folder does not hold composes as without it.
    assert_eq!(
        shader::compose_from(Some(dir.path()), "sample_f32", v).unwrap(),
        shader::compose_from(None, "sample_f32", v).unwrap()
    );
    // A name the folder holds but cannot read (here a folder): an error with its path.
    std::fs::create_dir(dir.path().join("embed_f32_bf16w.wgsl")).unwrap();
    let err = shader::compose_from(Some(dir.path()), "embed_f32_bf16w", v).unwrap_err();
    assert!(err.contains("embed_f32_bf16w.wgsl"), "{err}");
}

/// `src` as compose appends it: every line with a newline.
fn lines(src: &str) -> String {
    src.lines().map(|l| format!("{l}\n")).collect()
}
