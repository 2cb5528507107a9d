//! Compiled components shared by content: loading the same bytes under a
//! second name (one component deployed for several topics or tenants)
//! neither compiles them again nor keeps a second copy of the machine code.
//! An entry lives as long as a loaded handler uses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::contract::Pre;

#[derive(Default)]
pub(super) struct Compiled(Mutex<HashMap<String, Weak<Pre>>>);

impl Compiled {
    /// The component of `digest` if a loaded handler still uses it.
    pub fn get(&self, digest: &str) -> Option<Arc<Pre>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, pre| pre.strong_count() > 0);
        map.get(digest).and_then(Weak::upgrade)
    }

    /// Remembers `pre` as the component of `digest`.
    pub fn insert(&self, digest: &str, pre: &Arc<Pre>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(digest.to_string(), Arc::downgrade(pre));
    }
}
