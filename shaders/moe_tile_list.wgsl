// moe_tile_list: the row tiles that moe_route_prefill lists, as every grouped MoE prefill
// matmul reads them (the SIMT tile of moe_prefill_tile and the cooperative-matrix tile of
// moe_prefill_coop). The including kernel declares `offsets`, `tiles` and `tile_count`.

// The row tile of workgroup row wg_y in a dispatch for experts e0..e0 + n_part: (expert, first
// sorted entry, entries, at most tm). No entries when the list has no such tile or its expert
// is in another part (a listed tile always has at least one).
fn moe_tile_rows(wg_y: u32, e0: u32, n_part: u32, tm: u32) -> vec3<u32> {
    if wg_y >= tile_count[0] {
        return vec3<u32>(0u);
    }
    let tile = tiles[wg_y];
    let e = tile.x;
    if e < e0 || e >= e0 + n_part {
        return vec3<u32>(0u);
    }
    return vec3<u32>(e, tile.y, min(tm, offsets[e + 1u] - tile.y));
}
