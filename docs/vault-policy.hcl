# Least-privilege Vault policy for rotation-agent.
#
# The integration tests and `make demo` run the agent under exactly this policy. Narrow the
# KV paths to the mounts and prefixes your inventory names (for example secret/data/payments/*).

# KV v2: read the current version and its metadata, write the new version with check-and-set.
path "secret/data/*" {
  capabilities = ["read", "create", "update"]
}
path "secret/metadata/*" {
  capabilities = ["read"]
}
# Retiring the old version after the overlap window (credential option retire=delete|destroy).
path "secret/delete/*" {
  capabilities = ["update"]
}
path "secret/destroy/*" {
  capabilities = ["update"]
}

# kv-v2 option password_policy: generate values with a Vault password policy.
path "sys/policies/password/+/generate" {
  capabilities = ["read"]
}

# The agent's own token: validate it at start-up and keep it alive.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# pki kind: replace certificates (narrow pki/ and the roles to your inventory).
path "pki/cert/*" {
  capabilities = ["read"]
}
path "pki/roles/*" {
  capabilities = ["read"]
}
path "pki/issue/*" {
  capabilities = ["create", "update"]
}
path "pki/issuer/+/json" {
  capabilities = ["read"]
}
path "pki/issuer/+/crl" {
  capabilities = ["read"]
}
path "pki/revoke" {
  capabilities       = ["create", "update"]
  allowed_parameters = { "serial_number" = [] }
}
path "pki/crl/rotate" {
  capabilities = ["read"]
}

# transit kind: rotate keys, prove the new version works, optionally retire old versions.
path "transit/keys/+" {
  capabilities = ["read"]
}
path "transit/keys/+/rotate" {
  capabilities = ["update"]
}
path "transit/keys/+/config" {
  capabilities       = ["update"]
  allowed_parameters = { "min_decryption_version" = [] }
}
path "transit/encrypt/+" {
  capabilities = ["update"]
}
path "transit/decrypt/+" {
  capabilities = ["update"]
}
path "transit/sign/+" {
  capabilities = ["update"]
}
path "transit/verify/+" {
  capabilities = ["update"]
}
path "transit/hmac/+" {
  capabilities = ["update"]
}

# Database secrets engine: kinds database-static-role and database-root. Narrow "database/" and
# the names to your mounts, roles and connections. static-creds is read only to log in with the
# password (kept in memory, never stored).
path "database/config/*" {
  capabilities = ["read"]
}
path "database/static-roles/*" {
  capabilities = ["read"]
}
path "database/static-creds/*" {
  capabilities = ["read"]
}
path "database/rotate-role/*" {
  capabilities = ["update"]
}
path "database/rotate-root/*" {
  capabilities = ["update"]
}
path "database/reset/*" {
  capabilities = ["update"]
}
# database-root verify_role: name verification roles rotation-agent-verify*.
path "database/roles/rotation-agent-verify*" {
  capabilities = ["read"]
}
path "database/creds/rotation-agent-verify*" {
  capabilities = ["read"]
}
path "sys/leases/revoke/database/creds/rotation-agent-verify*" {
  capabilities = ["update"]
}

# approle-secret-id (AppRole mount "approle"; repeat for each AppRole mount).
path "auth/approle/role/+/role-id" {
  capabilities = ["read"]
}
path "auth/approle/role/+/secret-id" {
  capabilities = ["update", "list"]
}
path "auth/approle/role/+/secret-id-accessor/lookup" {
  capabilities = ["update"]
}
path "auth/approle/role/+/secret-id-accessor/destroy" {
  capabilities = ["update"]
}

# token (revoke; rotate with a token role). revoke-accessor also revokes the token of an
# AppRole verification login when that token may not revoke itself.
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}
path "auth/token/roles/+" {
  capabilities = ["read"]
}
path "auth/token/create/+" {
  capabilities = ["update"]
}
# Optional: lets a rotation resumed after a crash find and revoke a replacement token it
# created but never recorded. Without it, the evidence says one may be left to expire.
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}
# Optional, off by default (least privilege): only for orphan_children=true, which revokes a
# token read from deliver_to while keeping its children (revoke-orphan needs sudo); lookup
# confirms the value read is the token the accessor names. Without them such a credential
# fails with permission denied. Uncomment to use it.
# path "auth/token/lookup" {
#   capabilities = ["update"]
# }
# path "auth/token/revoke-orphan" {
#   capabilities = ["update", "sudo"]
# }

# lease-prefix
path "sys/leases/lookup/*" {
  capabilities = ["list", "sudo"]
}
path "sys/leases/lookup" {
  capabilities = ["update"]
}
path "sys/leases/revoke-prefix/*" {
  capabilities = ["update", "sudo"]
}
path "sys/leases/revoke-force/*" {
  capabilities = ["update", "sudo"]
}

# Entitlement comparison (approved_entitlements): read the policies attached to the identities
# a change names. Narrow the names to your inventory's identities.
path "auth/approle/role/+/policies" {
  capabilities = ["read"]
}
path "identity/entity/name/+" {
  capabilities = ["read"]
}
path "identity/group/name/+" {
  capabilities = ["read"]
}
# Effective capabilities of a token identity (token:<accessor>) on declared sensitive paths, and
# of a capability probe's token when the role's tokens lack the default policy.
path "sys/capabilities-accessor" {
  capabilities = ["update"]
}
# Capability probes (ROTATION_AGENT_EVIDENCE_PROBE_CAPABILITIES, default on) of approle: and
# token-role: identities need no rule of their own: they use the rules of the approle-secret-id
# and token kinds above (role-id read; secret-id update, and list to confirm a spent secret id is
# gone; secret-id-accessor/destroy; auth/token/create/<role>; revoke-accessor and lookup-accessor
# when a probe token cannot revoke itself). The login and the probe token's own requests
# (sys/capabilities-self, auth/token/revoke-self) are allowed by Vault's default policy, not
# this one. If you narrow those rules to the roles the agent rotates, add the roles it probes.
# Evidence signing (ROTATION_AGENT_EVIDENCE_SIGNER=transit, the default, with the default key
# rotation-agent-evidence): sign every record, and read the key's public keys at start-up and for
# `evidence keys`. The transit rules above cover these paths too; if the agent rotates no transit
# key, delete those and keep only these two.
path "transit/sign/rotation-agent-evidence" {
  capabilities = ["update"]
}
path "transit/keys/rotation-agent-evidence" {
  capabilities = ["read"]
}
