//! `runbook status fleet-... --format json`: a fleet and each of its targets, with the run id,
//! exit code and reason of each.

use super::{SCHEMA_VERSION, time};
use crate::state_fleets::{FleetRecord, FleetTarget};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value as Json;

/// The fleet: one `runbook run --targets` over an environment's targets.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FleetView {
    pub fleet_id: String,
    pub playbook: String,
    pub environment: String,
    /// The `--targets` selector it was started with.
    pub selector: String,
    /// Its options (concurrency, canary, stop-after).
    pub options: Json,
    /// The targets it chose, in order.
    pub targets: Vec<String>,
    pub operator: String,
    /// Where the fleet stands, as `runbook status fleet-...` says it.
    pub status: String,
    pub started_at: String,
}

/// One target of a fleet.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FleetTargetView {
    pub target: String,
    /// Its run (`null` when its child failed before starting one).
    pub run_id: Option<String>,
    pub status: String,
    /// Its child's exit code, once it ended.
    pub exit_code: Option<i64>,
    /// Why it failed: its run's error, or the last error its child printed.
    pub reason: Option<String>,
}

/// `runbook status fleet-... --format json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FleetDoc {
    pub schema_version: u32,
    pub fleet: FleetView,
    pub targets: Vec<FleetTargetView>,
}

impl FleetDoc {
    pub fn new(fleet: &FleetRecord, targets: &[FleetTarget]) -> Self {
        FleetDoc {
            schema_version: SCHEMA_VERSION,
            fleet: FleetView {
                fleet_id: fleet.id.clone(),
                playbook: fleet.playbook.clone(),
                environment: fleet.env.clone(),
                selector: fleet.selector.clone(),
                options: fleet.options.clone(),
                targets: fleet.targets.clone(),
                operator: fleet.operator.clone(),
                status: fleet.status.clone(),
                started_at: time(fleet.started_at),
            },
            targets: targets
                .iter()
                .map(|t| FleetTargetView {
                    target: t.target.clone(),
                    run_id: t.run_id.clone(),
                    status: t.status.clone(),
                    exit_code: t.exit_code,
                    reason: t.reason.clone(),
                })
                .collect(),
        }
    }
}
