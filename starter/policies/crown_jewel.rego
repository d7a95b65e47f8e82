# A custom risk factor, end to end (written by `hitlgate init`).
#
# A target that the inventory labels `criticality: crown-jewel` (see
# data/crown_jewels.yaml) gets the risk factor crown_jewel, and any action
# that changes it needs dual approval: one person with the role security
# and one member of the owner team. The factor is declared in hitlgate.yaml
# (risk_factors), which is how the engine tells a new factor from a typo.
#
# The rules below plug into the extension points listed at the top of
# decision.rego; this module is in the same package, so it can read the
# trusted facts (`identity`, `workload`, `target_id`, `mutating`) by name.
package hitlgate

crown_jewel if identity.labels.criticality == "crown-jewel"

crown_jewel if workload.labels.criticality == "crown-jewel"

factor_present contains "crown_jewel" if crown_jewel

factor_reason["crown_jewel"] := concat("", [target_id, " is labelled criticality: crown-jewel in the inventory"])

dual_conditions contains "crown_jewel" if {
	mutating
	crown_jewel
}

dual_reason["crown_jewel"] := concat("", [target_id, " is a crown jewel, so two people must agree before it changes"])
