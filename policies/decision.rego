# hitlgate default policy pack.
#
# Produces one document, data.hitlgate.decision, for the proposal in `input`
# (validated against schemas/proposal.schema.json before it gets here).
# Every risk fact is looked up in the trusted inventory under
# input.inventory; nothing the proposal says about its target is believed.
#
# Two kinds of field live in `input`:
#   input.action, input.requester, input.justification, ...  the agent's
#       proposal: what it asks for, never a fact about the target;
#   input.inventory  the trusted facts. The engine adds it after validating
#       the proposal (whose schema admits no top-level `inventory`, so an
#       agent cannot send it): the target's neighbourhood in the inventory -
#       its record under identities or workloads, the workloads in its
#       used_by, its partner, the teams that own these, those teams'
#       approvers, and protected ([target] or []) - in the same shape as the
#       whole inventory, looked up by key. The decision's policy_revision
#       covers the inventory revision these facts came from.
# Look facts up by the target's id (inventory.identities[target_id]);
# a rule that iterates a whole section sees only the neighbourhood.
#
# The pack is written in the subset of Rego v1 that both OPA and regopy
# (rego-cpp) evaluate identically: comprehensions iterate with `x := arr[_]`
# rather than `some x in arr`, and no rule is queried whose value is `false`.
#
# Extending the pack: put your rules in a module of your own in package
# hitlgate (see the README, "Writing policies", and crown_jewel.rego in the
# project `hitlgate init` writes). These rules are the extension points:
#
#   factor_present contains "my_factor" if ...   a risk factor; declare its
#                                                name in hitlgate.yaml
#                                                (risk_factors: [my_factor])
#   factor_reason["my_factor"] := "..."          the sentence an analyst reads
#   dual_conditions contains "my_rule" if ...    require dual approval, with
#   dual_reason["my_rule"] := "..."              the sentence that says why
#   single_conditions contains "my_rule" if ...  require at least one approval
#   deny_row if ...                              deny outright
#
# Trusted facts about the target are `identity`, `workload` and `partner`
# (records of the inventory, including their `labels`); read facts from
# these, never from `input`, which the agent wrote.
package hitlgate

inventory := input.inventory

action_type := input.action.type

target_id := input.action.target

# The constant lists below are arrays rather than sets because regopy builds
# every literal on each query, and a set costs several times more to build.

# Actions that only inform people; they never change the target.
informational_actions := ["notify_owner", "open_ticket"]

# Actions that cannot be undone once executed.
irreversible_actions := ["revoke_secret", "disable_federated_credential"]

identity_kinds := ["api_key", "service_account", "token", "certificate", "secret", "federated_credential"]

all_kinds := array.concat(identity_kinds, ["workload"])

# Which kinds of target each action applies to. Anything else is denied:
# isolate_workload on an API key is a mistake, not a risk to weigh. The
# table is one rule per action, so only the row for this action is built.
applicable_kinds := ["secret", "api_key", "token", "certificate"] if action_type == "revoke_secret"

applicable_kinds := ["api_key", "secret"] if action_type == "rotate_api_key"

applicable_kinds := ["service_account"] if action_type == "suspend_service_account"

applicable_kinds := ["token", "service_account", "federated_credential"] if action_type == "invalidate_tokens"

applicable_kinds := ["service_account", "api_key", "federated_credential"] if action_type == "reduce_privileges"

applicable_kinds := ["workload"] if action_type == "isolate_workload"

applicable_kinds := ["federated_credential"] if action_type == "disable_federated_credential"

applicable_kinds := all_kinds if informational

# ---------------------------------------------------------------------------
# Target lookup (the enrichment step: trusted facts from inventory).
# ---------------------------------------------------------------------------

identity := inventory.identities[target_id]

workload := inventory.workloads[target_id]

target_kind := identity.kind

target_kind := "workload" if workload

known_target if target_kind

owner := identity.owner

owner := workload.owner

partner_id := identity.partner

partner := inventory.partners[partner_id]

informational if action_type in informational_actions

mutating if not informational

# ---------------------------------------------------------------------------
# Risk factors: facts about the target and the action.
# ---------------------------------------------------------------------------

protected_target if {
	some i
	inventory.protected[i] == target_id
}

action_not_applicable if {
	known_target
	not target_kind in applicable_kinds
}

unknown_target if not known_target

production_credential if identity.environment == "production"

production_workload if workload.environment == "production"

customer_facing_users contains w if {
	w := identity.used_by[_]
	inventory.workloads[w].customer_facing == true
}

customer_facing if count(customer_facing_users) > 0

customer_facing if workload.customer_facing == true

federated_partner if identity.kind == "federated_credential"

federated_partner if partner_id

# A partner missing from the inventory has no known fallback: fail closed.
no_fallback if {
	federated_partner
	not partner.safe_fallback == true
}

high_privilege if identity.privilege == "high"

high_privilege if identity.privilege == "admin"

irreversible if action_type in irreversible_actions

# Fixed order, so reasons read the same on every engine; factors added by
# other modules follow the built-in ones, sorted by name.
factor_order := [
	"protected_target",
	"action_not_applicable",
	"unknown_target",
	"production_credential",
	"production_workload",
	"customer_facing",
	"federated_partner",
	"no_fallback",
	"high_privilege",
	"irreversible",
]

risk_factors := array.concat(
	[f | f := factor_order[_]; factor_present[f]],
	sort([f | factor_present[f]; not f in factor_order]),
)

factor_present contains "protected_target" if protected_target

factor_present contains "action_not_applicable" if action_not_applicable

factor_present contains "unknown_target" if unknown_target

factor_present contains "production_credential" if production_credential

factor_present contains "production_workload" if production_workload

factor_present contains "customer_facing" if customer_facing

factor_present contains "federated_partner" if federated_partner

factor_present contains "no_fallback" if no_fallback

factor_present contains "high_privilege" if high_privilege

factor_present contains "irreversible" if irreversible

# ---------------------------------------------------------------------------
# The tier table (first matching row wins).
# ---------------------------------------------------------------------------

deny_row if protected_target

deny_row if action_not_applicable

dual_conditions contains "customer_facing_production_credential" if {
	mutating
	production_credential
	customer_facing
}

dual_conditions contains "partner_without_fallback" if {
	mutating
	no_fallback
}

dual_conditions contains "irreversible_on_privileged_production" if {
	mutating
	irreversible
	production_credential
	high_privilege
}

single_factors := {"production_credential", "production_workload", "customer_facing", "federated_partner", "high_privilege"}

single_conditions contains f if {
	mutating
	some f in single_factors
	factor_present[f]
}

tier := "deny" if deny_row

else := "dual_approval" if unknown_target

else := "dual_approval" if count(dual_conditions) > 0

else := "single_approval" if count(single_conditions) > 0

else := "auto_allow"

# ---------------------------------------------------------------------------
# Quorum: how many approvals, and which roles or teams must be among them.
# Each slot is filled by a distinct person holding any of its roles or
# belonging to any of its teams.
# ---------------------------------------------------------------------------

security_slot := {"roles": ["security"], "teams": []}

quorum := {"required": 0, "slots": []} if tier == "auto_allow"

quorum := {"required": 0, "slots": []} if tier == "deny"

quorum := {"required": 1, "slots": [{"roles": ["security"], "teams": [owner]}]} if tier == "single_approval"

quorum := {"required": 2, "slots": [security_slot, security_slot]} if {
	tier == "dual_approval"
	unknown_target
}

quorum := {"required": 2, "slots": [security_slot, {"roles": ["partner_management"], "teams": []}]} if {
	tier == "dual_approval"
	known_target
	federated_partner
}

quorum := {"required": 2, "slots": [security_slot, {"roles": [], "teams": [owner]}]} if {
	tier == "dual_approval"
	known_target
	not federated_partner
}

# The approval window (ttl_seconds): how long a pending request waits for
# its quorum before it expires. Dual approvals need two people, so they get
# longer to gather them.
ttl_by_tier := {
	"auto_allow": 300,
	"single_approval": 3600,
	"dual_approval": 7200,
	"deny": 0,
}

# The warrant lifetime (warrant_ttl_seconds), counted from the grant: an
# executor must use the warrant this soon after the quorum was met, or the
# request lapses and must be proposed again. Minutes, not hours (the engine
# accepts 10 to 3600); a deny yields no warrant. A dual approval may have
# been gathered for a change that needs a maintenance slot, so it gets more
# time than an auto-allow, which anyone may run at once.
warrant_ttl_by_tier := {
	"auto_allow": 300,
	"single_approval": 600,
	"dual_approval": 900,
	"deny": 0,
}

# ---------------------------------------------------------------------------
# Reasons: sentences an analyst understands.
# ---------------------------------------------------------------------------

# Each built-in factor's sentence is defined only when the factor is present:
# regopy builds every entry of this object on each query, so a sentence for
# an absent factor would be built and never read (4-5% of a decision).

factor_reason["protected_target"] := concat("", [target_id, " is protected: no automated path may touch it"]) if protected_target

factor_reason["action_not_applicable"] := concat("", [action_type, " does not apply to ", target_id, ", whose kind is ", target_kind]) if action_not_applicable

factor_reason["unknown_target"] := concat("", [target_id, " is not in the inventory; an unknown target is treated as the highest risk"]) if unknown_target

factor_reason["production_credential"] := concat("", [target_id, " is a production credential"]) if production_credential

factor_reason["production_workload"] := concat("", [target_id, " is a production workload"]) if production_workload

factor_reason["customer_facing"] := concat("", [target_id, " is used by customer-facing workloads: ", concat(", ", sort([w | customer_facing_users[w]]))]) if {
	identity
	customer_facing
}

factor_reason["customer_facing"] := concat("", [target_id, " is a customer-facing workload"]) if {
	workload
	customer_facing
}

factor_reason["federated_partner"] := concat("", [target_id, " is a credential of federated partner ", partner_id]) if partner_id

factor_reason["federated_partner"] := concat("", [target_id, " is a federated credential with no partner in the inventory"]) if {
	identity.kind == "federated_credential"
	not partner_id
}

factor_reason["no_fallback"] := concat("", ["partner ", partner_id, " has no safe fallback path if ", target_id, " is disabled"]) if {
	no_fallback
	partner_id
}

factor_reason["no_fallback"] := concat("", ["no partner is recorded for ", target_id, ", so no safe fallback is known"]) if {
	no_fallback
	not partner_id
}

factor_reason["high_privilege"] := concat("", [target_id, " has ", identity.privilege, " privilege"]) if high_privilege

factor_reason["irreversible"] := concat("", [action_type, " is irreversible"]) if irreversible

dual_reason["customer_facing_production_credential"] := concat("", [target_id, " is a production credential used by a customer-facing workload"])

dual_reason["partner_without_fallback"] := concat("", ["disabling ", target_id, " would cut off a partner with no safe fallback"])

dual_reason["irreversible_on_privileged_production"] := concat("", [action_type, " cannot be undone on a production ", identity.privilege, "-privilege credential"])

dual_reason_order := ["customer_facing_production_credential", "partner_without_fallback", "irreversible_on_privileged_production"]

# Dual-approval conditions added by other modules follow the built-in ones, sorted by name.
dual_conditions_in_order := array.concat(
	[c | c := dual_reason_order[_]; dual_conditions[c]],
	sort([c | dual_conditions[c]; not c in dual_reason_order]),
)

# Iterating the factors present, not the whole order, skips a lookup per absent factor.
factor_reasons := [factor_reason[f] | f := risk_factors[_]]

tier_reasons := ["deny: the action must not run through an automated path"] if tier == "deny"

tier_reasons := ["dual approval: two people with the role security must approve an action on an unknown target"] if {
	tier == "dual_approval"
	unknown_target
}

tier_reasons := array.concat(
	[concat("", ["dual approval: ", dual_reason[c]]) | c := dual_conditions_in_order[_]],
	[dual_quorum_reason],
) if {
	tier == "dual_approval"
	known_target
}

dual_quorum_reason := "two distinct people must approve: one with the role security and one with the role partner_management" if federated_partner

dual_quorum_reason := concat("", ["two distinct people must approve: one with the role security and one member of ", owner]) if not federated_partner

tier_reasons := [concat("", ["single approval: one person with the role security or on ", owner, " must approve"])] if tier == "single_approval"

tier_reasons := [concat("", ["auto-allow: ", action_type, " only informs people and does not change ", target_id])] if {
	tier == "auto_allow"
	informational
}

tier_reasons := [concat("", ["auto-allow: ", target_id, " is non-production, internal and not highly privileged"])] if {
	tier == "auto_allow"
	mutating
}

# ---------------------------------------------------------------------------
# Controls and blast radius.
# ---------------------------------------------------------------------------

control_nhi := {
	"framework": "OWASP Non-Human Identity Top 10",
	"id": "NHI-07",
	"relevance": "Human approval gates reduce unsafe automation around NHI remediation and privilege changes.",
}

control_agentic := {
	"framework": "OWASP Agentic AI Top 10",
	"id": "A-03",
	"relevance": "Agentic systems need oversight before executing high-impact recommendations.",
}

control_csf := {
	"framework": "NIST CSF 2.0",
	"id": "RS.MA",
	"relevance": "Response management emphasizes controlled, coordinated incident handling.",
}

applies_nhi if identity

applies_nhi if unknown_target

applies_agentic if input.requester.kind == "agent"

controls := array.concat(
	array.concat([control_nhi | applies_nhi], [control_agentic | applies_agentic]),
	[control_csf],
)

blast_workloads := sort([w | w := identity.used_by[_]]) if identity

blast_workloads := [target_id] if workload

blast_workloads := [] if unknown_target

blast_partners := [partner_id] if partner_id

blast_partners := [] if not partner_id

blast_radius := {"workloads": blast_workloads, "partners": blast_partners}

# ---------------------------------------------------------------------------
# The decision document (schemas/decision.schema.json, minus policy_revision,
# which the engine adds from the bundle it evaluated).
# ---------------------------------------------------------------------------

decision := {
	"tier": tier,
	"risk_factors": risk_factors,
	"reasons": array.concat(factor_reasons, tier_reasons),
	"quorum": quorum,
	"ttl_seconds": ttl_by_tier[tier],
	"warrant_ttl_seconds": warrant_ttl_by_tier[tier],
	"controls": controls,
	"blast_radius": blast_radius,
}
