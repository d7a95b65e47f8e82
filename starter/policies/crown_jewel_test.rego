# Unit tests of crown_jewel.rego, on a small inventory of their own.
# Run with `hitlgate policy test` (which calls `opa test`).
package crown_jewel_test

import data.hitlgate

inv := {
	"teams": {"team-a": {}},
	"workloads": {"job": {"environment": "production", "owner": "team-a", "customer_facing": false}},
	"partners": {},
	"identities": {
		"jewel": {
			"kind": "secret", "environment": "production", "owner": "team-a", "privilege": "medium",
			"used_by": ["job"], "labels": {"criticality": "crown-jewel"},
		},
		"plain": {"kind": "secret", "environment": "production", "owner": "team-a", "privilege": "medium", "used_by": ["job"]},
	},
	"approvers": {},
	"protected": [],
}

proposal(action_type, target, parameters) := {
	"action": {"type": action_type, "target": target, "parameters": parameters},
	"requester": {"id": "agent-1", "kind": "agent"},
	"justification": "unit test",
}

decide(action_type, target) := d if {
	d := hitlgate.decision with input as proposal(action_type, target, {}) with input.inventory as inv
}

test_crown_jewel_needs_dual_approval if {
	d := decide("rotate_api_key", "jewel")
	d.tier == "dual_approval"
	d.risk_factors == ["production_credential", "crown_jewel"]
	d.quorum == {"required": 2, "slots": [{"roles": ["security"], "teams": []}, {"roles": [], "teams": ["team-a"]}]}
	"dual approval: jewel is a crown jewel, so two people must agree before it changes" in d.reasons
}

test_same_key_without_the_label_needs_one_approval if {
	d := decide("rotate_api_key", "plain")
	d.tier == "single_approval"
	not "crown_jewel" in d.risk_factors
}

test_informing_the_owner_of_a_crown_jewel_auto_allows if {
	d := decide("notify_owner", "jewel")
	d.tier == "auto_allow"
	"crown_jewel" in d.risk_factors
}

# Labels are trusted facts from the inventory: a proposal cannot claim one.
test_a_label_claimed_in_the_proposal_is_ignored if {
	p := proposal("rotate_api_key", "plain", {"labels": {"criticality": "crown-jewel"}})
	d := hitlgate.decision with input as p with input.inventory as inv
	d.tier == "single_approval"
	not "crown_jewel" in d.risk_factors
}
