# The gateway: no secrets in Vault yet (it verifies tokens with the identity provider's keys).
path "sys/nothing" { capabilities = ["deny"] }
