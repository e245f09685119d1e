//! Kubeconfigs for the test bed's clusters.

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::error::{Result, TestBedError};

/// Renders a kubeconfig with one cluster, one token user and one context.
pub fn render(cluster: &str, server: &str, ca_cert_pem: &str, user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_cert_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: {user}\ncurrent-context: {cluster}\n"
    )
}

/// Builds a client configuration from kubeconfig text.
pub async fn config_from_yaml(cluster: &str, yaml: &str) -> Result<Config> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|source| TestBedError::Kubeconfig {
        cluster: cluster.to_owned(),
        source,
    })?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| TestBedError::Kubeconfig {
            cluster: cluster.to_owned(),
            source,
        })
}

/// Builds a client from kubeconfig text.
pub async fn client_from_yaml(cluster: &str, yaml: &str) -> Result<Client> {
    let config = config_from_yaml(cluster, yaml).await?;
    Client::try_from(config).map_err(TestBedError::kube(format!("build a client for {cluster}")))
}
