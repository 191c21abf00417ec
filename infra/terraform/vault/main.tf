# Vault for the platform: the Transit keys, the KV v2 mount of wrapped data keys, one policy per
# service read from the same files the local stack applies (infra/vault/policies), and a
# Kubernetes auth role per service bound to exactly that service's account.
locals {
  policy_dir = coalesce(var.policy_dir, "${path.module}/../../vault/policies")
}

resource "vault_mount" "transit" {
  path        = var.transit_mount
  type        = "transit"
  description = "clinical-platform: PHI key-encryption and checkpoint signing keys"
}

resource "vault_transit_secret_backend_key" "phi" {
  backend          = vault_mount.transit.path
  name             = var.phi_key
  type             = "aes256-gcm96"
  deletion_allowed = false
  exportable       = false
}

resource "vault_transit_secret_backend_key" "checkpoints" {
  backend          = vault_mount.transit.path
  name             = var.audit_signing_key
  type             = "ed25519"
  deletion_allowed = false
  exportable       = false
}

resource "vault_mount" "key_store" {
  path        = var.key_store_mount
  type        = "kv"
  options     = { version = "2" }
  description = "clinical-platform: wrapped per-patient data keys and forget tombstones"
}

resource "vault_policy" "service" {
  for_each = toset(var.services)

  name   = "${var.name_prefix}${each.key}"
  policy = file("${local.policy_dir}/${each.key}.hcl")
}

resource "vault_auth_backend" "kubernetes" {
  type = "kubernetes"
  path = var.kubernetes_auth_path
}

resource "vault_kubernetes_auth_backend_config" "this" {
  backend            = vault_auth_backend.kubernetes.path
  kubernetes_host    = var.kubernetes_host
  kubernetes_ca_cert = var.kubernetes_ca_cert
}

resource "vault_kubernetes_auth_backend_role" "service" {
  for_each = toset(var.services)

  backend                          = vault_auth_backend.kubernetes.path
  role_name                        = "${var.name_prefix}${each.key}"
  bound_service_account_names      = ["${var.service_account_prefix}${each.key}"]
  bound_service_account_namespaces = [var.namespace]
  token_policies                   = [vault_policy.service[each.key].name]
  token_ttl                        = var.token_ttl_seconds
  token_max_ttl                    = var.token_ttl_seconds * 4
  audience                         = var.audience
}
