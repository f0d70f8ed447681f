//! The driver's statistics for one of our kernels (registers, workgroup memory, stack, ...),
//! which wgpu does not report: the kernel composed as the crate composes it (subgroups, f16
//! bits and cache; OSS_WGPU_STATS_F32_KV=1 for the f32 cache, OSS_WGPU_STATS_LUT=1 for the
//! table variants of the MXFP4 decode), written to SPIR-V as wgpu's
//! Vulkan backend writes our unchecked modules (no bounds checks, no loop counters), with the
//! override values given, then built into a Vulkan compute pipeline with
//! VK_KHR_pipeline_executable_properties' statistics captured. Compiles only: nothing runs.
//! Where registers limit how many workgroups share a multiprocessor, this is how to know
//! (BENCHMARKS.md, change 30).
//!
//!   cargo bench --bench pipeline_stats -- moe_gate_up_prefill_f16_mf4w WG=256
//!
//! The first Vulkan device is used. The entry point is the kernel's name.

use ash::vk;
use oss_wgpu::gpu::shader::{self, ShaderVariant};
use std::collections::HashMap;
use std::ffi::CStr;

/// The kernel's SPIR-V as wgpu's Vulkan backend writes it for our unchecked modules, and its
/// bindings (number, whether a uniform).
fn spirv(kernel: &str, consts: &HashMap<String, f64>) -> (Vec<u32>, Vec<(u32, bool)>) {
    let variant = ShaderVariant {
        subgroups: true,
        f16_kv: std::env::var("OSS_WGPU_STATS_F32_KV").is_err(),
        f16_bits: std::env::var("OSS_WGPU_STATS_LUT").is_err(),
    };
    let src = shader::compose(kernel, variant).unwrap_or_else(|e| panic!("{kernel}: {e}"));
    let module =
        naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{}", e.emit_to_string(&src)));
    let mut v = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    let info = v.validate(&module).expect("valid");
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, kernel)),
        &consts
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect::<naga::back::PipelineConstants>(),
    )
    .expect("overrides");
    let module = module.into_owned();
    let info = info.into_owned();
    let mut bindings = Vec::new();
    for (_, g) in module.global_variables.iter() {
        if let Some(b) = &g.binding {
            assert_eq!(b.group, 0);
            bindings.push((b.binding, matches!(g.space, naga::AddressSpace::Uniform)));
        }
    }
    let caps = [
        naga::back::spv::Capability::Shader,
        naga::back::spv::Capability::Float16,
        naga::back::spv::Capability::StorageBuffer16BitAccess,
        naga::back::spv::Capability::UniformAndStorageBuffer16BitAccess,
        naga::back::spv::Capability::GroupNonUniform,
        naga::back::spv::Capability::GroupNonUniformVote,
        naga::back::spv::Capability::GroupNonUniformArithmetic,
        naga::back::spv::Capability::GroupNonUniformBallot,
        naga::back::spv::Capability::GroupNonUniformShuffle,
        naga::back::spv::Capability::GroupNonUniformShuffleRelative,
        naga::back::spv::Capability::GroupNonUniformQuad,
        naga::back::spv::Capability::CooperativeMatrixKHR,
        naga::back::spv::Capability::VulkanMemoryModel,
        naga::back::spv::Capability::Int64,
    ];
    let opts = naga::back::spv::Options {
        lang_version: (1, 6),
        flags: naga::back::spv::WriterFlags::empty(),
        capabilities: Some(caps.iter().cloned().collect()),
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: naga::proc::BoundsCheckPolicy::Unchecked,
            buffer: naga::proc::BoundsCheckPolicy::Unchecked,
            image_load: naga::proc::BoundsCheckPolicy::Unchecked,
            binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
        },
        zero_initialize_workgroup_memory: naga::back::spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: false,
        ..Default::default()
    };
    let po = naga::back::spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: kernel.to_string(),
    };
    let words = naga::back::spv::write_vec(&module, &info, &opts, Some(&po)).expect("spirv");
    (words, bindings)
}

/// The kernels of the prefill and decode paths with the override values the host gives them
/// on the H200 (subgroups of 32): what runs when no kernel is named.
const DEFAULT_KERNELS: &[&str] = &[
    "moe_gate_up_prefill_f16_mf4w WG=256",
    "moe_down_prefill_f16_mf4w WG=256",
    "matmul_f16_bf16w WG=256 BIAS=1 RESIDUAL=0",
    "attention_prefill_f16",
    "moe_gate_up_f32_mf4w ROWS_PER_WG=32 R=4 X_VEC4=720 X_GLOBAL=0",
    "moe_down_f32_mf4w ROWS_PER_WG=8 R=4 X_VEC4=2880 X_GLOBAL=0",
    "matvec_f32_bf16w ROWS_PER_WG=16 R=4",
];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs: Vec<Vec<String>> = if args.is_empty() {
        (DEFAULT_KERNELS.iter())
            .map(|k| k.split(' ').map(String::from).collect())
            .collect()
    } else {
        vec![args]
    };
    unsafe {
        let entry_vk = ash::Entry::load().expect("libvulkan");
        let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_3);
        let instance = entry_vk
            .create_instance(
                &vk::InstanceCreateInfo::default().application_info(&app),
                None,
            )
            .expect("instance");
        let pd = instance.enumerate_physical_devices().unwrap()[0];
        let props = instance.get_physical_device_properties(pd);
        let dev_name = CStr::from_ptr(props.device_name.as_ptr())
            .to_string_lossy()
            .into_owned();
        let qf = instance
            .get_physical_device_queue_family_properties(pd)
            .iter()
            .position(|q| q.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .unwrap() as u32;
        // Every feature the device has, enabled (as wgpu enables what our kernels need).
        let mut f11 = vk::PhysicalDeviceVulkan11Features::default();
        let mut f12b = vk::PhysicalDeviceVulkan12Features::default();
        let mut f13b = vk::PhysicalDeviceVulkan13Features::default();
        let features = {
            let mut f2 = vk::PhysicalDeviceFeatures2::default()
                .push_next(&mut f11)
                .push_next(&mut f12b)
                .push_next(&mut f13b);
            instance.get_physical_device_features2(pd, &mut f2);
            f2.features
        };
        let mut fcm2 =
            vk::PhysicalDeviceCooperativeMatrixFeaturesKHR::default().cooperative_matrix(true);
        let mut fpe2 = vk::PhysicalDevicePipelineExecutablePropertiesFeaturesKHR::default()
            .pipeline_executable_info(true);
        f11.p_next = std::ptr::null_mut();
        f12b.p_next = std::ptr::null_mut();
        f13b.p_next = std::ptr::null_mut();
        let have: Vec<String> = instance
            .enumerate_device_extension_properties(pd)
            .unwrap()
            .iter()
            .map(|e| {
                CStr::from_ptr(e.extension_name.as_ptr())
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let coop = have.iter().any(|e| e == "VK_KHR_cooperative_matrix");
        if !have
            .iter()
            .any(|e| e == "VK_KHR_pipeline_executable_properties")
        {
            println!("{dev_name}: no VK_KHR_pipeline_executable_properties");
            return;
        }
        let mut exts = vec![ash::khr::pipeline_executable_properties::NAME.as_ptr()];
        if coop {
            exts.push(ash::khr::cooperative_matrix::NAME.as_ptr());
        }
        let prio = [1.0f32];
        let qci = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(qf)
            .queue_priorities(&prio)];
        let dci = vk::DeviceCreateInfo::default()
            .queue_create_infos(&qci)
            .enabled_extension_names(&exts)
            .enabled_features(&features)
            .push_next(&mut f11)
            .push_next(&mut f12b)
            .push_next(&mut f13b)
            .push_next(&mut fpe2);
        let dci = if coop { dci.push_next(&mut fcm2) } else { dci };
        let device = instance.create_device(pd, &dci, None).expect("device");
        let pep = ash::khr::pipeline_executable_properties::Device::new(&instance, &device);
        for run in &runs {
            let (kernel, consts) = (&run[0], &run[1..]);
            stats(&device, &pep, &dev_name, kernel, consts);
        }
    }
}

/// Builds `kernel` with the override values `consts` (NAME=VALUE) and prints its statistics.
unsafe fn stats(
    device: &ash::Device,
    pep: &ash::khr::pipeline_executable_properties::Device,
    dev_name: &str,
    kernel: &str,
    consts: &[String],
) {
    let values: HashMap<String, f64> = (consts.iter())
        .map(|a| {
            let (k, v) = a.split_once('=').expect("NAME=VALUE");
            (k.to_string(), v.parse().expect("number"))
        })
        .collect();
    let (words, bindings) = spirv(kernel, &values);
    unsafe {
        let sm = device
            .create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&words), None)
            .expect("shader module");
        let dsl_b: Vec<vk::DescriptorSetLayoutBinding> = bindings
            .iter()
            .map(|&(b, uni)| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(b)
                    .descriptor_type(if uni {
                        vk::DescriptorType::UNIFORM_BUFFER
                    } else {
                        vk::DescriptorType::STORAGE_BUFFER
                    })
                    .descriptor_count(1)
                    .stage_flags(vk::ShaderStageFlags::COMPUTE)
            })
            .collect();
        let dsl = device
            .create_descriptor_set_layout(
                &vk::DescriptorSetLayoutCreateInfo::default().bindings(&dsl_b),
                None,
            )
            .unwrap();
        let sets = [dsl];
        let pl = device
            .create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default().set_layouts(&sets),
                None,
            )
            .unwrap();
        let name = std::ffi::CString::new(kernel).unwrap();
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(sm)
            .name(&name);
        let cpi = [vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(pl)
            .flags(
                vk::PipelineCreateFlags::CAPTURE_STATISTICS_KHR
                    | vk::PipelineCreateFlags::CAPTURE_INTERNAL_REPRESENTATIONS_KHR,
            )];
        let p = device
            .create_compute_pipelines(vk::PipelineCache::null(), &cpi, None)
            .map_err(|e| e.1)
            .expect("pipeline")[0];
        let execs = pep
            .get_pipeline_executable_properties(&vk::PipelineInfoKHR::default().pipeline(p))
            .unwrap();
        print!("{dev_name} {kernel} {}:", consts.join(","));
        for (i, _e) in execs.iter().enumerate() {
            let info = vk::PipelineExecutableInfoKHR::default()
                .pipeline(p)
                .executable_index(i as u32);
            for s in pep.get_pipeline_executable_statistics(&info).unwrap() {
                let n = CStr::from_ptr(s.name.as_ptr()).to_string_lossy();
                let v = match s.format {
                    vk::PipelineExecutableStatisticFormatKHR::BOOL32 => format!("{}", s.value.b32),
                    vk::PipelineExecutableStatisticFormatKHR::INT64 => format!("{}", s.value.i64),
                    vk::PipelineExecutableStatisticFormatKHR::UINT64 => format!("{}", s.value.u64),
                    _ => format!("{}", s.value.f64),
                };
                print!(" [{n}={v}]");
            }
        }
        println!();
    }
}
