//! The authorization check under load: 1,000,000 role assignments over 100,000 principals,
//! spread over 10 subscriptions x 100 resource groups x 10 workspaces at every level, with the
//! built-in roles and a custom one. Each check is timed on its own; the report gives p50, p99,
//! p99.9 and max, and the same figures for a baseline that scans every assignment linearly
//! (what a naive implementation without the per-principal index would do), on a sample.
//!
//! Run: `cargo bench -p mlgate-core --bench authorize`

// A benchmark stops at the first failure; panicking is its error handling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use mlgate_core::ids::{ObjectId, RoleAssignmentId, RoleDefinitionId, TenantId};
use mlgate_core::rbac::engine::Assignment;
use mlgate_core::rbac::role::builtin_roles;
use mlgate_core::rbac::{Action, Engine, RoleDefinition, RoleDefinitionFile, Scope};
use mlgate_core::records::PrincipalType;

const PRINCIPALS: usize = 100_000;
const PER_PRINCIPAL: usize = 10;
const CHECKS: usize = 1_000_000;
const SUBS: usize = 10;
const RGS: usize = 100;
const WSS: usize = 10;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn sub_id(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i + 1, i + 1)
}

fn scope(rng: &mut Rng, depth: usize) -> Scope {
    let s = sub_id(rng.below(SUBS));
    let text = match depth {
        0 => format!("/subscriptions/{s}"),
        1 => format!("/subscriptions/{s}/resourceGroups/rg{}", rng.below(RGS)),
        _ => format!(
            "/subscriptions/{s}/resourceGroups/rg{}/providers/Microsoft.MachineLearningServices/workspaces/ws{}",
            rng.below(RGS),
            rng.below(WSS)
        ),
    };
    Scope::parse(&text).expect("valid scope")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(label: &str, mut t: Vec<Duration>) {
    t.sort();
    println!(
        "{label:<28} n={:<8} p50={:>8.2?} p99={:>8.2?} p99.9={:>8.2?} max={:>8.2?}",
        t.len(),
        percentile(&t, 0.50),
        percentile(&t, 0.99),
        percentile(&t, 0.999),
        t[t.len() - 1]
    );
}

fn main() {
    let tenant = TenantId::new_random();
    let mut roles = builtin_roles();
    let custom: RoleDefinitionFile = serde_json::from_value(serde_json::json!({
        "Name": "Model Operator",
        "Actions": ["Microsoft.MachineLearningServices/workspaces/models/*", "*/read"],
        "NotActions": ["Microsoft.MachineLearningServices/workspaces/models/delete"],
        "AssignableScopes": [format!("/subscriptions/{}", sub_id(0))]
    }))
    .expect("role json");
    roles.push(
        RoleDefinition::custom(&custom, RoleDefinitionId::new_random(), tenant).expect("role"),
    );
    let role_ids: Vec<RoleDefinitionId> = roles.iter().map(|r| r.id).collect();

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let principals: Vec<ObjectId> = (0..PRINCIPALS).map(|_| ObjectId::new_random()).collect();
    let started = Instant::now();
    let mut assignments = Vec::with_capacity(PRINCIPALS * PER_PRINCIPAL);
    for p in &principals {
        for _ in 0..PER_PRINCIPAL {
            let depth = rng.below(3);
            assignments.push(Assignment {
                id: RoleAssignmentId::new_random(),
                principal: *p,
                principal_type: PrincipalType::ServicePrincipal,
                role: role_ids[rng.below(role_ids.len())],
                scope: scope(&mut rng, depth),
            });
        }
    }
    let baseline_copy = assignments.clone();
    let engine = Engine::new(roles.clone(), assignments);
    println!(
        "built {} assignments over {} principals in {:?}",
        PRINCIPALS * PER_PRINCIPAL,
        PRINCIPALS,
        started.elapsed()
    );

    let actions: Vec<Action> = [
        "Microsoft.MachineLearningServices/workspaces/read",
        "Microsoft.MachineLearningServices/workspaces/write",
        "Microsoft.MachineLearningServices/workspaces/models/write",
        "Microsoft.MachineLearningServices/workspaces/services/listKeys/action",
        "Microsoft.Authorization/roleAssignments/write",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
    ]
    .iter()
    .map(|a| Action::new(a).expect("action"))
    .collect();

    // Targets are workspace-level scopes (the common case) and child resources below them.
    let mut queries = Vec::with_capacity(CHECKS);
    for _ in 0..CHECKS {
        let p = principals[rng.below(PRINCIPALS)];
        let a = rng.below(actions.len());
        let mut s = scope(&mut rng, 2);
        if rng.below(4) == 0 {
            s = Scope::parse(&format!("{}/models/m{}", s.as_str(), rng.below(100))).expect("scope");
        }
        queries.push((p, a, s));
    }

    // Warm up, then time every check.
    for (p, a, s) in queries.iter().take(100_000) {
        std::hint::black_box(engine.authorize(*p, &actions[*a], s).is_ok());
    }
    let mut times = Vec::with_capacity(CHECKS);
    let mut allowed = 0usize;
    for (p, a, s) in &queries {
        let t = Instant::now();
        let ok = engine.authorize(*p, &actions[*a], s).is_ok();
        times.push(t.elapsed());
        allowed += usize::from(ok);
    }
    println!("allowed {allowed} of {CHECKS} checks");
    report("engine (indexed)", times);

    // Baseline: a linear scan over every assignment, on a 200-check sample.
    let role_of = |id: RoleDefinitionId| roles.iter().find(|r| r.id == id);
    let mut times = Vec::new();
    for (p, a, s) in queries.iter().take(200) {
        let t = Instant::now();
        let ok = baseline_copy.iter().any(|x| {
            x.principal == *p
                && s.is_within(&x.scope)
                && role_of(x.role).is_some_and(|r| r.permits(&actions[*a]))
        });
        times.push(t.elapsed());
        std::hint::black_box(ok);
    }
    report("baseline (linear scan)", times);
}
