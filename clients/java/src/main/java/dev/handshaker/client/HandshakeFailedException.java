package dev.handshaker.client;

import javax.net.ssl.SSLHandshakeException;

/**
 * A TLS handshake that failed: the service (or the peer) raised an alert. The alert record, when
 * this side raised it, was written to the peer before this was thrown, and the socket is closed.
 */
public class HandshakeFailedException extends SSLHandshakeException {
  private static final long serialVersionUID = 1L;

  private final int alert;
  private final String reason;
  private final boolean sentByPeer;

  public HandshakeFailedException(int alert, String reason, boolean sentByPeer) {
    super("TLS handshake failed: " + Alert.describe(alert, reason, sentByPeer));
    this.alert = alert;
    this.reason = reason;
    this.sentByPeer = sentByPeer;
  }

  /** The TLS alert description (IANA), e.g. 48 for unknown_ca. */
  public int alert() {
    return alert;
  }

  /** Why the handshake failed, for logs; never holds key material. */
  public String reason() {
    return reason;
  }

  /** True when the peer sent the alert, false when this side (the service) raised it. */
  public boolean sentByPeer() {
    return sentByPeer;
  }
}
