//! Reading a process's Prometheus text endpoint (`GET /metrics` on
//! 127.0.0.1): the status table's aggregator row and the end-to-end tests'
//! metric checks.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `/metrics` text served on 127.0.0.1:`port` (HTTP/1.0, headers
/// included; 2 s timeout).
pub async fn fetch(port: u16) -> std::io::Result<String> {
    let read = async {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        socket.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await?;
        let mut text = String::new();
        socket.read_to_string(&mut text).await?;
        Ok(text)
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "GET /metrics timed out"))?
}

/// Sum of the samples of `series`: a metric name (every label set) or a
/// name with labels (`name{k="v"}`, that series). `None` when no sample
/// matches.
pub fn sum(text: &str, series: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(series)?;
            // `a_total` must not match `a_total_extra`.
            let whole = series.ends_with('}') || rest.starts_with(' ') || rest.starts_with('{');
            whole.then(|| line.rsplit(' ').next()?.parse::<f64>().ok())?
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "HTTP/1.0 200 OK\r\n\r\n# HELP a_total x\n# TYPE a_total counter\n\
        a_total 7\na_total_extra 9\nb_total{kind=\"x\"} 2\nb_total{kind=\"y\"} 3\n";

    #[test]
    fn sums_whole_names_and_labelled_series() {
        assert_eq!(sum(TEXT, "a_total"), Some(7.0));
        assert_eq!(sum(TEXT, "b_total"), Some(5.0));
        assert_eq!(sum(TEXT, "b_total{kind=\"y\"}"), Some(3.0));
        assert_eq!(sum(TEXT, "missing_total"), None);
    }

    #[tokio::test]
    async fn fetches_from_a_metrics_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 64];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(TEXT.as_bytes()).await;
        });
        let text = fetch(port).await.unwrap();
        assert_eq!(sum(&text, "a_total"), Some(7.0));
        // Nothing listening.
        assert!(fetch(1).await.is_err());
    }
}
