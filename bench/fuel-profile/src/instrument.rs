//! Wraps every function of a module so a host sees each call begin and
//! end: a wrapper with the function's signature calls
//! `sticky_profile.enter(index)`, the function, then
//! `sticky_profile.exit(index)`, and every call, table entry, export and the
//! start function are pointed at the wrapper. The function's own code is
//! unchanged; each call costs a few instructions more (two constants, two
//! imported calls, its arguments read once more), counted in its caller.

use std::collections::HashMap;

use walrus::ir::{Call, RefFunc, ReturnCall, VisitorMut, dfs_pre_order_mut};
use walrus::{ElementItems, ExportItem, FunctionBuilder, FunctionId, LocalId, Module, ValType};

/// An instrumented module.
pub struct Instrumented {
    /// The module, encoded.
    pub wasm: Vec<u8>,
    /// Function names by the index `enter`/`exit` receive, demangled
    /// without their hash; without a name section, the export name or
    /// `f<N>`.
    pub names: Vec<String>,
}

/// Instruments `wasm` (a module with a name section, for names worth
/// reading: `make fuel-profile` builds one).
pub fn instrument(wasm: &[u8]) -> Result<Instrumented, String> {
    let mut module = Module::from_buffer(wasm).map_err(|e| format!("parsing the module: {e}"))?;
    let import = sticky_host_tests::profile::IMPORT_MODULE;
    let hook = module.types.add(&[ValType::I32], &[]);
    let (enter, _) = module.add_import_func(import, "enter", hook);
    let (exit, _) = module.add_import_func(import, "exit", hook);
    let exported: HashMap<FunctionId, String> = module
        .exports
        .iter()
        .filter_map(|e| match e.item {
            ExportItem::Function(f) => Some((f, e.name.clone())),
            _ => None,
        })
        .collect();
    let originals: Vec<(FunctionId, Option<String>, walrus::TypeId)> = module
        .funcs
        .iter_local()
        .map(|(id, f)| {
            let name = module.funcs.get(id).name.clone();
            (id, name.or_else(|| exported.get(&id).cloned()), f.ty())
        })
        .collect();
    let mut wrapper_of = HashMap::new();
    let mut names = Vec::with_capacity(originals.len());
    for (index, (id, name, ty)) in originals.iter().enumerate() {
        let index = i32::try_from(index).map_err(|_| "more than 2^31 functions".to_owned())?;
        let signature = module.types.get(*ty);
        let (params, results) = (signature.params().to_vec(), signature.results().to_vec());
        let args: Vec<LocalId> = params.iter().map(|p| module.locals.add(*p)).collect();
        let mut builder = FunctionBuilder::new(&mut module.types, &params, &results);
        let mut body = builder.func_body();
        body.i32_const(index).call(enter);
        for arg in &args {
            body.local_get(*arg);
        }
        body.call(*id).i32_const(index).call(exit);
        let wrapper = builder.finish(args, &mut module.funcs);
        wrapper_of.insert(*id, wrapper);
        names.push(match name {
            Some(name) => format!("{:#}", rustc_demangle::demangle(name)),
            None => format!("f{}", id.index()),
        });
    }
    let mut redirect = Redirect(&wrapper_of);
    for (id, function) in module.funcs.iter_local_mut() {
        if wrapper_of.contains_key(&id) {
            let entry = function.entry_block();
            dfs_pre_order_mut(&mut redirect, function, entry);
        }
    }
    for export in module.exports.iter_mut() {
        if let ExportItem::Function(f) = &mut export.item {
            redirect.point(f);
        }
    }
    for element in module.elements.iter_mut() {
        if let ElementItems::Functions(functions) = &mut element.items {
            functions.iter_mut().for_each(|f| redirect.point(f));
        }
    }
    if let Some(start) = &mut module.start {
        redirect.point(start);
    }
    Ok(Instrumented {
        wasm: module.emit_wasm(),
        names,
    })
}

/// Points references to a wrapped function at its wrapper.
struct Redirect<'a>(&'a HashMap<FunctionId, FunctionId>);

impl Redirect<'_> {
    fn point(&self, function: &mut FunctionId) {
        if let Some(wrapper) = self.0.get(function) {
            *function = *wrapper;
        }
    }
}

impl VisitorMut for Redirect<'_> {
    fn visit_call_mut(&mut self, instr: &mut Call) {
        self.point(&mut instr.func);
    }

    fn visit_return_call_mut(&mut self, instr: &mut ReturnCall) {
        self.point(&mut instr.func);
    }

    fn visit_ref_func_mut(&mut self, instr: &mut RefFunc) {
        self.point(&mut instr.func);
    }
}
