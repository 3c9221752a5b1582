package dev.handshaker.client;

import javax.net.ssl.SSLException;

/**
 * A fatal alert after the handshake: received from the peer, or raised here (a record that does
 * not authenticate, an unexpected message) and sent to the peer before the socket was closed.
 */
public class TlsAlertException extends SSLException {
  private static final long serialVersionUID = 1L;

  private final int alert;
  private final String reason;
  private final boolean sentByPeer;

  public TlsAlertException(int alert, String reason, boolean sentByPeer) {
    super("TLS connection failed: " + Alert.describe(alert, reason, sentByPeer));
    this.alert = alert;
    this.reason = reason;
    this.sentByPeer = sentByPeer;
  }

  /** The TLS alert description (IANA), e.g. 20 for bad_record_mac. */
  public int alert() {
    return alert;
  }

  public String reason() {
    return reason;
  }

  /** True when the peer sent the alert. */
  public boolean sentByPeer() {
    return sentByPeer;
  }
}
