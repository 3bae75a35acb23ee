//! Schedules as Kubernetes `batch/v1` CronJobs, one YAML document each: `spec.schedule` the
//! fields as plain numbers, `spec.timeZone` the zone (stable since Kubernetes 1.27),
//! `concurrencyPolicy: Forbid` (one run of a schedule at a time) and `backoffLimit: 0` (a
//! failed run is looked at and resumed by a person, never started afresh by the Job).

use super::Job;
use serde_json::{Value, json};

/// What the pods run.
#[derive(Debug, Clone)]
pub struct Pod<'a> {
    /// The image holding runbook and the project (its working directory the project).
    pub image: &'a str,
    /// A Secret whose keys become the run's environment (the target's URL, the secrets).
    pub secret: Option<&'a str>,
    /// The namespace, when given.
    pub namespace: Option<&'a str>,
}

/// One CronJob as a JSON value (the tests check it against the schema of the fields used).
pub fn cron_job(job: &Job, pod: &Pod<'_>) -> Value {
    let mut container = json!({
        "name": "runbook",
        "image": pod.image,
        "args": job.args,
    });
    if let Some(secret) = pod.secret {
        container["envFrom"] = json!([{ "secretRef": { "name": secret } }]);
    }
    let mut metadata = json!({
        "name": format!("runbook-{}", job.name),
        "labels": {
            "app.kubernetes.io/name": "runbook",
            "app.kubernetes.io/component": "schedule",
            "runbook/schedule": job.name,
        },
        "annotations": {
            "runbook/description": job.title(),
            "runbook/cron": job.cadence.expr,
        },
    });
    if let Some(ns) = pod.namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata,
        "spec": {
            "schedule": job.cadence.fields().cron_text(),
            "timeZone": job.cadence.zone.name(),
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": { "labels": { "runbook/schedule": job.name } },
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [container],
                        },
                    },
                },
            },
        },
    })
}

/// Every CronJob as one multi-document YAML stream (for `kubectl apply -f`).
pub fn manifests(jobs: &[Job], pod: &Pod<'_>) -> Result<String, String> {
    let mut out = String::new();
    for job in jobs {
        let doc = serde_saphyr::to_string(&cron_job(job, pod)).map_err(|e| e.to_string())?;
        out.push_str("---\n");
        out.push_str(&doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
