# Optional rules for ROTATION_AGENT_EVIDENCE_REMEDIATE_ENTITLEMENTS=true: the agent writes the
# approved policy list back to an identity in drift, and nothing else. Attach this policy in
# addition to vault-policy.hcl only where remediation is wanted; narrow the names to your
# inventory's identities.
path "auth/approle/role/+/policies" {
  capabilities       = ["update"]
  allowed_parameters = { "token_policies" = [] }
}
path "auth/token/roles/+" {
  capabilities       = ["update"]
  allowed_parameters = { "allowed_policies" = [] }
}
path "identity/entity/name/+" {
  capabilities       = ["update"]
  allowed_parameters = { "policies" = [] }
}
path "identity/group/name/+" {
  capabilities       = ["update"]
  allowed_parameters = { "policies" = [] }
}
