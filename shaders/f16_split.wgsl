// f16_split: an f32 as two f16 parts for the cooperative-matrix kernels, whose operands are
// f16: hi is v cut to f16's 10 fraction bits with integer masks (exact in f16 for |v| >=
// 2^-14), so the remainder v - hi is exact in f32 and no compiler can fold it away; lo is that
// remainder times 2^11, which keeps it out of f16's subnormals (some drivers flush them) for
// any v whose hi is normal. A product taken with each part, summed as hi + lo / 2^11, is the
// product with v to within 2^-20 of |v| (lo's conversion lands on either neighbour; 2^-24
// absolute where hi is below f16's normals). v must be within f16's range.

const F16_LO_SCALE: f32 = 2048.0;

fn f16_hi(v: vec4<f32>) -> vec4<f32> {
    return bitcast<vec4<f32>>(bitcast<vec4<u32>>(v) & vec4<u32>(0xffffe000u));
}

// The lo part of v, given its f16_hi.
fn f16_lo(v: vec4<f32>, hi: vec4<f32>) -> vec4<f32> {
    return (v - hi) * F16_LO_SCALE;
}
