//! Patroni REST documents (`/cluster`, `/patroni`, `/history`) from arbitrary bytes: a typed
//! error or a value, never a panic; and a parsed `/cluster` always answers `leader()`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgha_client::patroni::{ClusterView, HistoryEntry, NodeStatus};

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = ClusterView::from_json(data) {
        let _ = view.leader();
        for m in &view.members {
            let _ = view.member(&m.name);
            let _ = m.state.is_up();
            let _ = m.role.is_standby();
        }
    }
    let _ = NodeStatus::from_json(data);
    let _ = HistoryEntry::list_from_json(data);
});
