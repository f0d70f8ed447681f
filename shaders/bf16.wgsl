// bf16 weights are stored as they are in the checkpoint: two per u32, element 2i in the low half.
// A bf16 is the high half of an f32, so unpacking is a shift or a mask and a bitcast (exact).

fn bf16_lo(word: u32) -> f32 {
    return bitcast<f32>(word << 16u);
}

fn bf16_hi(word: u32) -> f32 {
    return bitcast<f32>(word & 0xffff0000u);
}

fn bf16_pair(word: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(word << 16u), bitcast<f32>(word & 0xffff0000u));
}

// Element i of a bf16 tensor stored as packed u32 words.
fn bf16_at(word: u32, i: u32) -> f32 {
    return select(bf16_lo(word), bf16_hi(word), (i & 1u) == 1u);
}
