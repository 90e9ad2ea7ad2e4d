//! The HTTP client side of the measurements: one client configuration, and range requests
//! whose status is checked (206) and whose bytes are compared with the generated data.
//! The same requests go to Magnetar and to nginx; the API calls are [`crate::server`]'s.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use reqwest::{Client, Response};

use crate::{swarm::check, STEP};

/// A client with [`STEP`] as its timeout that does not follow redirects.
pub fn client() -> Result<Client> {
    let builder = Client::builder().timeout(STEP);
    let builder = builder.connect_timeout(Duration::from_secs(5));
    Ok(builder
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// GET `len` bytes at `offset` (206 and the full length required).
pub async fn fetch_range(client: &Client, url: &str, offset: u64, len: u64) -> Result<Bytes> {
    let range = format!("bytes={offset}-{}", offset + len - 1);
    let response = partial(client, url, &range).await?;
    let body = response.bytes().await.context("body")?;
    match body.len() as u64 == len {
        true => Ok(body),
        false => bail!("GET {range}: {} bytes", body.len()),
    }
}

/// GET from `offset` to the end; returns the response once its first bytes arrived (checked).
pub async fn first_byte(client: &Client, url: &str, offset: u64, data: &[u8]) -> Result<Response> {
    let mut response = partial(client, url, &format!("bytes={offset}-")).await?;
    let chunk = response.chunk().await?.context("empty body")?;
    check(&chunk, data, offset)?;
    Ok(response)
}

/// GET with `Range: {range}`; anything but 206 is an error carrying the body.
async fn partial(client: &Client, url: &str, range: &str) -> Result<Response> {
    let response = client.get(url).header("Range", range).send().await?;
    let status = response.status();
    if status != 206 {
        bail!("GET {range} answered {status}: {}", response.text().await?);
    }
    Ok(response)
}
