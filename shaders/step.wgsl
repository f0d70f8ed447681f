// What changes from one step to the next, written once per submit and bound as a uniform by
// every kernel that depends on the position.
struct Step {
    pos0: u32,          // position of the first token of this step
    n_tokens: u32,      // tokens in this step (1 when decoding)
    sample_index: u32,  // index of the token the sampler draws in this step
    _pad: u32,
}
