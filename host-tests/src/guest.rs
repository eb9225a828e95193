//! Checked access to the filter's linear memory. Every pointer the filter
//! passes is validated: null, out of bounds or overflowing ranges are ABI
//! violations with a message naming the call and the argument.

use wasmtime::{Caller, Result};

use crate::state::HostState;

/// Reinterprets a wasm32 `i32` argument as the unsigned address or size it is.
pub fn unsigned(value: i32) -> u32 {
    u32::from_ne_bytes(value.to_ne_bytes())
}

/// Reinterprets a u32 as the `i32` a wasm32 result slot holds.
pub fn signed(value: u32) -> i32 {
    i32::from_ne_bytes(value.to_ne_bytes())
}

/// The byte range `ptr..ptr+len` of memory, or why it is not one.
fn range(memory_len: usize, ptr: i32, len: i32) -> Result<std::ops::Range<usize>, String> {
    let start = usize::try_from(unsigned(ptr)).map_err(|e| e.to_string())?;
    let size = usize::try_from(unsigned(len)).map_err(|e| e.to_string())?;
    if start == 0 && size > 0 {
        return Err(format!("null pointer with length {size}"));
    }
    match start.checked_add(size) {
        Some(end) if end <= memory_len => Ok(start..end),
        _ => Err(format!(
            "range {start:#x}+{size} lies outside linear memory ({memory_len} bytes)"
        )),
    }
}

/// Copies `len` bytes at `ptr` out of the filter's memory.
pub fn read(
    caller: &mut Caller<'_, HostState>,
    call: &str,
    what: &str,
    ptr: i32,
    len: i32,
) -> Result<Vec<u8>> {
    let Some(memory) = caller.data().memory else {
        return Err(caller
            .data_mut()
            .violation(call, "the module exports no memory"));
    };
    let data = memory.data(&caller);
    match range(data.len(), ptr, len) {
        Ok(r) => match data.get(r) {
            Some(bytes) => Ok(bytes.to_vec()),
            None => Err(caller
                .data_mut()
                .violation(call, format!("{what}: out of bounds"))),
        },
        Err(e) => Err(caller.data_mut().violation(call, format!("{what}: {e}"))),
    }
}

/// Writes `bytes` at `ptr` into the filter's memory.
pub fn write(
    caller: &mut Caller<'_, HostState>,
    call: &str,
    what: &str,
    ptr: i32,
    bytes: &[u8],
) -> Result<()> {
    let Some(memory) = caller.data().memory else {
        return Err(caller
            .data_mut()
            .violation(call, "the module exports no memory"));
    };
    let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    let (data, state) = memory.data_and_store_mut(&mut *caller);
    match range(data.len(), ptr, len) {
        Ok(r) => match data.get_mut(r) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(state.violation(call, format!("{what}: out of bounds"))),
        },
        // A result slot at address 0 is a null out-pointer.
        Err(e) => Err(state.violation(call, format!("{what}: {e}"))),
    }
}

/// Writes a u32 result slot (a wasm32 pointer or size).
pub fn write_u32(
    caller: &mut Caller<'_, HostState>,
    call: &str,
    what: &str,
    ptr: i32,
    value: u32,
) -> Result<()> {
    write(caller, call, what, ptr, &value.to_le_bytes())
}

/// Checks that a result slot of `size` bytes is writable, before the host
/// allocates anything for it.
pub fn check_slot(
    caller: &mut Caller<'_, HostState>,
    call: &str,
    what: &str,
    ptr: i32,
    size: i32,
) -> Result<()> {
    let Some(memory) = caller.data().memory else {
        return Err(caller
            .data_mut()
            .violation(call, "the module exports no memory"));
    };
    let len = memory.data_size(&caller);
    if ptr == 0 {
        return Err(caller
            .data_mut()
            .violation(call, format!("{what}: null out-pointer")));
    }
    range(len, ptr, size)
        .map(|_| ())
        .map_err(|e| caller.data_mut().violation(call, format!("{what}: {e}")))
}

/// Hands `bytes` to the filter the way proxy-wasm hosts do: allocate with the
/// module's `proxy_on_memory_allocate`, copy, then store the pointer and size
/// in the two result slots. Empty values get a null pointer, as in Envoy.
pub fn return_bytes(
    caller: &mut Caller<'_, HostState>,
    call: &str,
    ptr_slot: i32,
    size_slot: i32,
    bytes: &[u8],
) -> Result<()> {
    check_slot(caller, call, "return data pointer slot", ptr_slot, 4)?;
    check_slot(caller, call, "return size slot", size_slot, 4)?;
    let size = match u32::try_from(bytes.len()) {
        Ok(s) => s,
        Err(_) => return Err(caller.data_mut().violation(call, "value larger than 4 GiB")),
    };
    let mut address = 0u32;
    if size > 0 {
        let Some(alloc) = caller.data().alloc.clone() else {
            return Err(caller
                .data_mut()
                .violation(call, "the module exports no proxy_on_memory_allocate"));
        };
        address = unsigned(alloc.call(&mut *caller, signed(size))?);
        if address == 0 {
            return Err(caller.data_mut().violation(
                call,
                format!("proxy_on_memory_allocate({size}) returned null"),
            ));
        }
        write(
            caller,
            call,
            "memory from proxy_on_memory_allocate",
            signed(address),
            bytes,
        )?;
    }
    write_u32(caller, call, "return data pointer slot", ptr_slot, address)?;
    write_u32(caller, call, "return size slot", size_slot, size)
}
