# The chart, installed with the Secrets it expects and values wired from the vault and kafka
# modules' outputs.
locals {
  chart_path = coalesce(var.chart_path, "${path.module}/../../../deploy/helm/clinical-platform")
  values = {
    image = { repository = var.image.repository, tag = var.image.tag, digest = var.image.digest }
    kafka = {
      bootstrapServers        = var.kafka_bootstrap_servers
      securityProtocol        = "SASL_SSL"
      credentialsSecretPrefix = "clinical-kafka-"
      caSecret                = kubernetes_secret_v1.kafka_ca.metadata[0].name
      eventPartitions         = var.kafka_event_partitions
    }
    mongodb = {
      urlSecret    = kubernetes_secret_v1.mongodb.metadata[0].name
      urlSecretKey = "url"
    }
    vault = {
      addr            = var.vault_addr
      authMethod      = "kubernetes"
      rolePrefix      = var.vault.role_prefix
      transitMount    = var.vault.transit_mount
      phiKey          = var.vault.phi_key
      auditSigningKey = var.vault.audit_signing_key
      keyStoreMount   = var.vault.key_store_mount
    }
    auth = {
      jwtPublicKeys = var.internal_token_public_keys_pem
    }
    grpcTls = { enabled = true, secretPrefix = "clinical-grpc-tls-" }
    gateway = {
      signingKeySecret = kubernetes_secret_v1.gateway_signing_key.metadata[0].name
      oidc             = { issuer = var.oidc_issuer, audience = var.oidc_audience }
      ingress = {
        enabled = var.gateway_host != null
        host    = coalesce(var.gateway_host, "clinical.invalid")
      }
    }
  }
}

resource "kubernetes_namespace_v1" "this" {
  metadata {
    name = var.namespace
    labels = {
      "pod-security.kubernetes.io/enforce" = "restricted"
    }
  }
}

resource "kubernetes_secret_v1" "kafka" {
  for_each = toset(var.kafka_principals)

  metadata {
    name      = "clinical-kafka-${each.key}"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
  data = {
    username = var.kafka_credentials[each.key].username
    password = var.kafka_credentials[each.key].password
  }
}

resource "kubernetes_secret_v1" "kafka_ca" {
  metadata {
    name      = "clinical-kafka-ca"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
  data = { "ca.crt" = var.kafka_ca_pem }
}

resource "kubernetes_secret_v1" "mongodb" {
  metadata {
    name      = "clinical-mongodb"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
  data = { url = var.mongodb_url }
}

resource "kubernetes_secret_v1" "gateway_signing_key" {
  metadata {
    name      = "clinical-gateway-signing-keys"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
  data = { "signing-keys.pem" = var.gateway_signing_keys_pem }
}

# Made here from grpc_tls_certificates, or by cert-manager under the same names when it is null.
resource "kubernetes_secret_v1" "grpc_tls" {
  for_each = nonsensitive(var.grpc_tls_certificates != null) ? toset(var.kafka_principals) : toset([])

  metadata {
    name      = "clinical-grpc-tls-${each.key}"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
  type = "kubernetes.io/tls"
  data = {
    "tls.crt" = var.grpc_tls_certificates[each.key].certificate
    "tls.key" = var.grpc_tls_certificates[each.key].private_key
    "ca.crt"  = var.grpc_tls_certificates[each.key].ca_certificate
  }
}

resource "helm_release" "platform" {
  name      = var.release_name
  namespace = kubernetes_namespace_v1.this.metadata[0].name
  chart     = local.chart_path
  values    = compact([yamlencode(local.values), var.extra_values])
  atomic    = true
  wait      = true
  timeout   = 900

  depends_on = [
    kubernetes_secret_v1.kafka,
    kubernetes_secret_v1.kafka_ca,
    kubernetes_secret_v1.mongodb,
    kubernetes_secret_v1.gateway_signing_key,
    kubernetes_secret_v1.grpc_tls,
  ]
}
