//! One watched kind's objects, decoded one by one: an object that does not
//! decode is kept as its refusal (`Kind ns/name: field: reason`), so one bad
//! object never stops the others, and is never dropped silently.

use std::collections::BTreeMap;

use kube::core::DynamicObject;
use kube::runtime::watcher::Event;
use serde::de::DeserializeOwned;

/// Objects of one kind by name, as the watcher last described them.
#[derive(Debug)]
pub struct Cache<K> {
    kind: &'static str,
    objects: BTreeMap<String, Result<K, String>>,
    /// The relist in progress (`Init` .. `InitDone`), swapped in when done.
    pending: Option<BTreeMap<String, Result<K, String>>>,
    ready: bool,
}

impl<K: DeserializeOwned> Cache<K> {
    /// An empty cache of `kind` (for messages).
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            objects: BTreeMap::new(),
            pending: None,
            ready: false,
        }
    }

    /// Whether the first list has completed.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Applies one watcher event; true if the visible objects changed.
    pub fn apply(&mut self, event: Event<DynamicObject>) -> bool {
        match event {
            Event::Init => {
                self.pending = Some(BTreeMap::new());
                false
            }
            Event::InitApply(o) => {
                let (name, decoded) = self.decode(o);
                self.pending
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name, decoded);
                false
            }
            Event::InitDone => {
                self.objects = self.pending.take().unwrap_or_default();
                self.ready = true;
                true
            }
            Event::Apply(o) => {
                let (name, decoded) = self.decode(o);
                self.objects.insert(name, decoded);
                true
            }
            Event::Delete(o) => {
                let name = o.metadata.name.unwrap_or_default();
                self.objects.remove(&name).is_some()
            }
        }
    }

    fn decode(&self, o: DynamicObject) -> (String, Result<K, String>) {
        let name = o.metadata.name.clone().unwrap_or_default();
        let ns = o.metadata.namespace.clone().unwrap_or_default();
        let decoded =
            decode(&o).map_err(|(field, msg)| format!("{} {ns}/{name}: {field}: {msg}", self.kind));
        (name, decoded)
    }

    /// The objects that decoded.
    pub fn good(&self) -> Vec<K>
    where
        K: Clone,
    {
        self.objects
            .values()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect()
    }

    /// The refusals.
    pub fn errors(&self) -> impl Iterator<Item = &String> {
        self.objects.values().filter_map(|r| r.as_ref().err())
    }
}

/// Decodes the typed object, naming the field that failed.
pub fn decode<K: DeserializeOwned>(o: &DynamicObject) -> Result<K, (String, String)> {
    let value = serde_json::to_value(o).map_err(|e| (".".to_owned(), e.to_string()))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        (field, e.into_inner().to_string())
    })
}
