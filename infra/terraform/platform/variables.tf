variable "release_name" {
  description = "Helm release name; the services' objects are named <release>-clinical-platform-<service>."
  type        = string
  default     = "clinical"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.release_name)) && length(var.release_name) <= 30
    error_message = "release_name must be a DNS label of at most 30 characters."
  }
}

variable "namespace" {
  description = "Namespace to install into (created when missing)."
  type        = string
  default     = "clinical"
}

variable "chart_path" {
  description = "The chart; null takes deploy/helm/clinical-platform of this repository."
  type        = string
  default     = null
}

variable "image" {
  description = "The platform image: repository and tag (or digest)."
  type = object({
    repository = string
    tag        = optional(string, "")
    digest     = optional(string, "")
  })

  validation {
    condition     = var.image.digest == "" || can(regex("^sha256:[0-9a-f]{64}$", var.image.digest))
    error_message = "image.digest must be empty or sha256:<64 hex digits>."
  }
}

variable "kafka_bootstrap_servers" {
  description = "KAFKA_BOOTSTRAP_SERVERS (SASL_SSL listeners)."
  type        = string
}

variable "kafka_ca_pem" {
  description = "PEM CA certificate of the brokers' TLS listeners."
  type        = string
  sensitive   = true
}

variable "kafka_credentials" {
  description = "Per service, its SCRAM username and password (the kafka module's credentials output)."
  type        = map(object({ username = string, password = string }))
  sensitive   = true
}

variable "kafka_principals" {
  description = "The services with Kafka credentials (keys of kafka_credentials, which is sensitive as a whole)."
  type        = list(string)
  default     = ["patient", "orders", "results", "notify", "audit", "gateway"]
}

variable "grpc_tls_certificates" {
  description = <<-EOT
    Per service (each of kafka_principals), the PEM certificate, private key and CA certificate
    of its gRPC mutual TLS: server and client use, naming <release>-clinical-platform-<service>,
    all signed by one CA. null when cert-manager (or another issuer) makes the Secrets
    clinical-grpc-tls-<service> itself.
  EOT
  type = map(object({
    certificate    = string
    private_key    = string
    ca_certificate = string
  }))
  sensitive = true
  default   = null

  validation {
    condition = var.grpc_tls_certificates == null ? true : alltrue([
      for service in ["patient", "orders", "results", "notify", "audit", "gateway"] :
      contains(keys(var.grpc_tls_certificates), service)
    ])
    error_message = "grpc_tls_certificates needs an entry for each of patient, orders, results, notify, audit and gateway: production mode refuses plaintext gRPC."
  }
}

variable "kafka_event_partitions" {
  description = "Partitions of each event topic (the kafka module's event_partitions)."
  type        = number
  default     = 6
}

variable "mongodb_url" {
  description = "MONGODB_URL, credentials included."
  type        = string
  sensitive   = true
}

variable "vault_addr" {
  description = "VAULT_ADDR as the pods reach it."
  type        = string
}

variable "vault" {
  description = "The vault module's outputs: role_prefix, transit_mount, phi_key, audit_signing_key, key_store_mount."
  type = object({
    role_prefix       = string
    transit_mount     = string
    phi_key           = string
    audit_signing_key = string
    key_store_mount   = string
  })
}

variable "gateway_signing_keys_pem" {
  description = "The Ed25519 private keys (PEM, the first signs) of the internal tokens the gateway issues."
  type        = string
  sensitive   = true
}

variable "internal_token_public_keys_pem" {
  description = "The matching public keys (PEM), which the services verify the internal tokens with."
  type        = string

  validation {
    condition     = strcontains(var.internal_token_public_keys_pem, "BEGIN PUBLIC KEY")
    error_message = "internal_token_public_keys_pem must hold at least one PEM public key."
  }
}

variable "oidc_issuer" {
  description = "Issuer URL of the identity provider the gateway verifies users' tokens against."
  type        = string

  validation {
    condition     = startswith(var.oidc_issuer, "https://")
    error_message = "oidc_issuer must be an https:// URL."
  }
}

variable "oidc_audience" {
  description = "Audience the users' tokens must carry."
  type        = string
  default     = "clinical-gateway"
}

variable "gateway_host" {
  description = "Public host name of the gateway's Ingress; null leaves the Ingress out."
  type        = string
  default     = null
}

variable "extra_values" {
  description = "More chart values (YAML), merged over the ones this module sets."
  type        = string
  default     = ""
}
