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

# The agent's own token: validate it at start-up and keep it alive.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
