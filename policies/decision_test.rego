# Unit tests of the decision table, one or more per row, on a small
# inventory of their own (independent of the example inventory).
# Run with `hitlgate policy test` (which calls `opa test`).
package hitlgate_test

import data.hitlgate

inv := {
	"teams": {"team-a": {}, "team-p": {}, "team-sec": {}},
	"workloads": {
		"web-prod": {"environment": "production", "owner": "team-a", "customer_facing": true},
		"job-prod": {"environment": "production", "owner": "team-a", "customer_facing": false},
		"job-dev": {"environment": "development", "owner": "team-a", "customer_facing": false},
	},
	"partners": {
		"p-safe": {"owner": "team-p", "safe_fallback": true},
		"p-none": {"owner": "team-p", "safe_fallback": false},
	},
	"identities": {
		"key-prod-cf": {"kind": "api_key", "environment": "production", "owner": "team-a", "privilege": "medium", "used_by": ["web-prod"]},
		"key-prod-int": {"kind": "api_key", "environment": "production", "owner": "team-a", "privilege": "medium", "used_by": ["job-prod"]},
		"secret-prod-admin": {"kind": "secret", "environment": "production", "owner": "team-a", "privilege": "admin", "used_by": ["job-prod"]},
		"key-dev": {"kind": "api_key", "environment": "development", "owner": "team-a", "privilege": "low", "used_by": ["job-dev"]},
		"sa-dev-high": {"kind": "service_account", "environment": "development", "owner": "team-a", "privilege": "high", "used_by": []},
		"fed-safe": {"kind": "federated_credential", "environment": "staging", "owner": "team-p", "privilege": "low", "partner": "p-safe", "used_by": []},
		"fed-none": {"kind": "federated_credential", "environment": "staging", "owner": "team-p", "privilege": "low", "partner": "p-none", "used_by": []},
		"secret-locked": {"kind": "secret", "environment": "development", "owner": "team-a", "privilege": "low", "used_by": []},
	},
	"approvers": {},
	"protected": ["secret-locked"],
}

proposal(action_type, target) := {
	"action": {"type": action_type, "target": target, "parameters": {}},
	"requester": {"id": "agent-1", "kind": "agent"},
	"justification": "unit test",
}

decide(action_type, target) := d if {
	d := hitlgate.decision with input as proposal(action_type, target) with input.inventory as inv
}

# Row 1: deny.

test_protected_target_is_denied if {
	d := decide("revoke_secret", "secret-locked")
	d.tier == "deny"
	"protected_target" in d.risk_factors
	d.quorum.required == 0
}

test_protected_target_denied_even_for_notify if {
	decide("notify_owner", "secret-locked").tier == "deny"
}

test_action_not_applicable_is_denied if {
	d := decide("isolate_workload", "key-prod-cf")
	d.tier == "deny"
	"action_not_applicable" in d.risk_factors
}

test_workload_action_on_credential_kind_mismatch if {
	decide("rotate_api_key", "web-prod").tier == "deny"
}

# Row 2: unknown target.

test_unknown_target_needs_two_security_approvals if {
	d := decide("rotate_api_key", "nobody-knows")
	d.tier == "dual_approval"
	d.risk_factors == ["unknown_target"]
	d.quorum == {"required": 2, "slots": [{"roles": ["security"], "teams": []}, {"roles": ["security"], "teams": []}]}
}

# Row 3: dual approval.

test_customer_facing_production_credential_is_dual if {
	d := decide("rotate_api_key", "key-prod-cf")
	d.tier == "dual_approval"
	d.quorum == {"required": 2, "slots": [{"roles": ["security"], "teams": []}, {"roles": [], "teams": ["team-a"]}]}
	d.blast_radius == {"workloads": ["web-prod"], "partners": []}
}

test_partner_without_fallback_is_dual if {
	d := decide("disable_federated_credential", "fed-none")
	d.tier == "dual_approval"
	"no_fallback" in d.risk_factors
	d.quorum.slots[1] == {"roles": ["partner_management"], "teams": []}
	d.blast_radius.partners == ["p-none"]
}

test_irreversible_on_privileged_production_is_dual if {
	d := decide("revoke_secret", "secret-prod-admin")
	d.tier == "dual_approval"
	d.risk_factors == ["production_credential", "high_privilege", "irreversible"]
}

# Row 4: single approval.

test_internal_production_credential_is_single if {
	d := decide("rotate_api_key", "key-prod-int")
	d.tier == "single_approval"
	d.quorum == {"required": 1, "slots": [{"roles": ["security"], "teams": ["team-a"]}]}
}

test_reversible_action_on_privileged_production_is_single if {
	decide("rotate_api_key", "secret-prod-admin").tier == "single_approval"
}

test_partner_with_fallback_is_single if {
	d := decide("disable_federated_credential", "fed-safe")
	d.tier == "single_approval"
	not "no_fallback" in d.risk_factors
}

test_high_privilege_outside_production_is_single if {
	decide("suspend_service_account", "sa-dev-high").tier == "single_approval"
}

test_customer_facing_workload_isolation_is_single if {
	d := decide("isolate_workload", "web-prod")
	d.tier == "single_approval"
	d.risk_factors == ["production_workload", "customer_facing"]
}

# Row 5: auto-allow.

test_low_risk_development_key_auto_allows if {
	d := decide("rotate_api_key", "key-dev")
	d.tier == "auto_allow"
	d.risk_factors == []
	d.quorum.required == 0
}

test_development_workload_isolation_auto_allows if {
	decide("isolate_workload", "job-dev").tier == "auto_allow"
}

test_notify_on_production_key_auto_allows if {
	decide("notify_owner", "key-prod-cf").tier == "auto_allow"
}

# Trusted facts come from inventory, never from the proposal.

test_parameters_cannot_claim_facts if {
	p := object.union(proposal("rotate_api_key", "key-prod-cf"), {"action": {
		"type": "rotate_api_key",
		"target": "key-prod-cf",
		"parameters": {"environment": "development", "customer_facing": false},
	}})
	d := hitlgate.decision with input as p with input.inventory as inv
	d.tier == "dual_approval"
}

# Every decision carries the controls and reasons an analyst needs.

test_controls_for_agent_on_identity if {
	ids := [c.id | some c in decide("rotate_api_key", "key-prod-int").controls]
	ids == ["NHI-07", "A-03", "RS.MA"]
}

test_reasons_name_the_target if {
	d := decide("rotate_api_key", "key-prod-cf")
	"dual approval: key-prod-cf is a production credential used by a customer-facing workload" in d.reasons
}

# The approval window and the warrant lifetime, per tier.

test_windows_and_warrant_lifetimes_per_tier if {
	dual := decide("rotate_api_key", "key-prod-cf")
	[dual.ttl_seconds, dual.warrant_ttl_seconds] == [7200, 900]
	single := decide("rotate_api_key", "key-prod-int")
	[single.ttl_seconds, single.warrant_ttl_seconds] == [3600, 600]
	auto := decide("rotate_api_key", "key-dev")
	[auto.ttl_seconds, auto.warrant_ttl_seconds] == [300, 300]
	deny := decide("revoke_secret", "secret-locked")
	[deny.ttl_seconds, deny.warrant_ttl_seconds] == [0, 0]
}
