//! Fuel per function of an instrumented module (`make fuel-profile`): the
//! instrumenter (`bench/fuel-profile`) wraps every function of the filter in
//! calls to `sticky_profile.enter(index)` and `sticky_profile.exit(index)`;
//! this host answers them by reading the store's fuel, so each function's
//! cost is known exactly, inclusive of what it calls and on its own. A
//! module without these imports (every shipped one) never calls them.

use std::collections::BTreeMap;

use wasmtime::{Caller, Linker, Result};

/// The import module the instrumenter adds.
pub const IMPORT_MODULE: &str = "sticky_profile";

/// What one function cost over the calls recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Times it was called.
    pub calls: u64,
    /// Fuel from entry to return, callees included.
    pub inclusive: u64,
    /// Fuel spent in its own body (inclusive minus its callees' inclusive).
    pub own: u64,
}

/// One running call.
#[derive(Debug, Clone, Copy)]
struct Frame {
    function: u32,
    fuel_at_entry: u64,
    callees: u64,
}

/// The recorded costs, by function index (the instrumenter's numbering).
#[derive(Debug, Default)]
pub struct Profile {
    stack: Vec<Frame>,
    costs: BTreeMap<u32, Cost>,
    /// Calls and inclusive fuel per (caller, callee).
    edges: BTreeMap<(u32, u32), Cost>,
    /// An exit that did not match its entry (a trap unwound the stack).
    unbalanced: bool,
}

impl Profile {
    /// `function` was entered with `fuel` left.
    pub fn enter(&mut self, function: u32, fuel: u64) {
        self.stack.push(Frame {
            function,
            fuel_at_entry: fuel,
            callees: 0,
        });
    }

    /// `function` returned with `fuel` left.
    pub fn exit(&mut self, function: u32, fuel: u64) {
        let Some(frame) = self.stack.pop() else {
            self.unbalanced = true;
            return;
        };
        if frame.function != function {
            self.unbalanced = true;
        }
        let inclusive = frame.fuel_at_entry.saturating_sub(fuel);
        if let Some(caller) = self.stack.last_mut() {
            caller.callees = caller.callees.saturating_add(inclusive);
            let edge = self
                .edges
                .entry((caller.function, frame.function))
                .or_default();
            edge.calls = edge.calls.saturating_add(1);
            edge.inclusive = edge.inclusive.saturating_add(inclusive);
        }
        let cost = self.costs.entry(frame.function).or_default();
        cost.calls = cost.calls.saturating_add(1);
        cost.inclusive = cost.inclusive.saturating_add(inclusive);
        cost.own = cost
            .own
            .saturating_add(inclusive.saturating_sub(frame.callees));
    }

    /// Forgets what was recorded (calls still running are kept).
    pub fn clear(&mut self) {
        self.costs.clear();
        self.edges.clear();
    }

    /// The costs recorded since the last [`Profile::clear`], by function.
    pub fn costs(&self) -> &BTreeMap<u32, Cost> {
        &self.costs
    }

    /// Calls and inclusive fuel per (caller, callee) since the last
    /// [`Profile::clear`] (`own` is not kept per edge).
    pub fn edges(&self) -> &BTreeMap<(u32, u32), Cost> {
        &self.edges
    }

    /// Whether every exit matched its entry (a trap leaves calls open).
    pub fn balanced(&self) -> bool {
        !self.unbalanced && self.stack.is_empty()
    }
}

/// What a profile import records: the function and the fuel left.
type Hook = fn(&mut Profile, u32, u64);

/// Defines `sticky_profile.enter` and `sticky_profile.exit` on `linker`,
/// recording into the [`Profile`] that `profile` finds in the store's data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    profile: fn(&mut T) -> &mut Profile,
) -> Result<()> {
    let hooks: [(&str, Hook); 2] = [("enter", Profile::enter), ("exit", Profile::exit)];
    for (name, hook) in hooks {
        linker.func_wrap(
            IMPORT_MODULE,
            name,
            move |mut c: Caller<'_, T>, function: u32| {
                let fuel = c.get_fuel().unwrap_or(0);
                hook(profile(c.data_mut()), function, fuel);
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
