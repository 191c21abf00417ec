variable "services" {
  description = "Services with a Vault policy (infra/vault/policies/<service>.hcl) and a Kubernetes auth role."
  type        = list(string)
  default     = ["patient", "orders", "results", "notify", "audit", "gateway"]

  validation {
    condition     = alltrue([for s in var.services : can(regex("^[a-z][a-z0-9-]*$", s))])
    error_message = "Service names are lower-case words (patient, orders, ...)."
  }
}

variable "policy_dir" {
  description = "Folder of the per-service policy files; the default is the one the local stack applies."
  type        = string
  default     = null
}

variable "name_prefix" {
  description = "Prefix of the policy and role names: <prefix><service> (the chart's vault.rolePrefix)."
  type        = string
  default     = "clinical-"

  validation {
    condition     = can(regex("^[a-z0-9-]*$", var.name_prefix))
    error_message = "name_prefix may hold lower-case letters, digits and dashes only."
  }
}

variable "transit_mount" {
  description = "Path of the Transit engine (VAULT_TRANSIT_MOUNT)."
  type        = string
  default     = "transit"
}

variable "phi_key" {
  description = "Name of the key-encryption key of the per-patient data keys (VAULT_PHI_KEY)."
  type        = string
  default     = "clinical-phi"
}

variable "audit_signing_key" {
  description = "Name of the ed25519 key that signs the event logs' checkpoints (VAULT_AUDIT_SIGNING_KEY)."
  type        = string
  default     = "clinical-audit"
}

variable "key_store_mount" {
  description = "Path of the KV v2 mount holding the wrapped per-patient data keys (VAULT_KEY_STORE_MOUNT)."
  type        = string
  default     = "clinical-keys"
}

variable "kubernetes_auth_path" {
  description = "Path of the Kubernetes auth method."
  type        = string
  default     = "kubernetes"
}

variable "kubernetes_host" {
  description = "The Kubernetes API server Vault reviews service account tokens with (https://...)."
  type        = string

  validation {
    condition     = startswith(var.kubernetes_host, "https://")
    error_message = "kubernetes_host must be an https:// URL."
  }
}

variable "kubernetes_ca_cert" {
  description = "PEM CA certificate of that API server; null when Vault runs in the cluster and reads its own."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Kubernetes namespace of the platform's service accounts."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a Kubernetes namespace name."
  }
}

variable "service_account_prefix" {
  description = "The chart names each service account <prefix><service>: \"<release>-clinical-platform-\" by default."
  type        = string
}

variable "token_ttl_seconds" {
  description = "Lifetime of the Vault tokens the services log in for."
  type        = number
  default     = 3600

  validation {
    condition     = var.token_ttl_seconds >= 300 && var.token_ttl_seconds <= 86400
    error_message = "token_ttl_seconds must lie between 300 (5 minutes) and 86400 (a day)."
  }
}

variable "audience" {
  description = "Audience the service account tokens must carry; null accepts the API server's default."
  type        = string
  default     = null
}
