package dev.handshaker.client.keyless;

import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.List;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SNIServerName;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * A JSSE trust manager that asks the service's CertificateValidator for the verdict on the peer's
 * chain, against one trust bundle. JSSE runs no checks of its own around an
 * X509ExtendedTrustManager, so this one checks the name too:
 *
 * <ul>
 *   <li>server chains (purpose SERVER_AUTH) must name the host the client asked for: the SNI host
 *       name when one is set, else the socket's or engine's peer host (an IP literal is matched
 *       against iPAddress SANs), unless a fixed {@link PeerName} was given;
 *   <li>client chains (CLIENT_AUTH) are checked against the fixed name when one was given.
 * </ul>
 *
 * <p>An INVALID verdict throws {@link KeylessCertificateException} (the service's alert and
 * reason), which JSSE turns into a fatal alert and the cause of its SSLHandshakeException; a
 * service that cannot be asked throws a plain CertificateException whose cause is the
 * {@link KeylessException}. {@link #getAcceptedIssuers()} is empty: the anchors live in the
 * service, so a server sends no certificate_authorities and clients offer any certificate.
 */
public final class KeylessTrustManager extends X509ExtendedTrustManager {
  private final KeylessClient client;
  private final String trustBundle;
  private final PeerName fixedName;

  /** Validates against {@code trustBundle} (null: "default"), deriving the server's name from the connection. */
  public KeylessTrustManager(KeylessClient client, String trustBundle) {
    this(client, trustBundle, PeerName.none());
  }

  /** Validates against {@code trustBundle}, requiring {@code peerName} of the peer (e.g. a SPIFFE ID). */
  public KeylessTrustManager(KeylessClient client, String trustBundle, PeerName peerName) {
    this.client = client;
    this.trustBundle = trustBundle;
    this.fixedName = peerName;
  }

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
    PeerName name = fixedName;
    if (name.isNone() && socket instanceof SSLSocket) {
      SSLSocket ssl = (SSLSocket) socket;
      name = serverName(ssl.getSSLParameters(), ssl.getHandshakeSession());
    }
    check(chain, KeylessClient.Purpose.SERVER_AUTH, name);
  }

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
    PeerName name = fixedName;
    if (name.isNone() && engine != null) {
      name = serverName(engine.getSSLParameters(), engine.getHandshakeSession());
    }
    check(chain, KeylessClient.Purpose.SERVER_AUTH, name);
  }

  /** Without a connection there is no host to check, so this needs a fixed name. */
  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
    check(chain, KeylessClient.Purpose.SERVER_AUTH, fixedName);
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
    check(chain, KeylessClient.Purpose.CLIENT_AUTH, fixedName);
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
    check(chain, KeylessClient.Purpose.CLIENT_AUTH, fixedName);
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
    check(chain, KeylessClient.Purpose.CLIENT_AUTH, fixedName);
  }

  @Override
  public X509Certificate[] getAcceptedIssuers() {
    return new X509Certificate[0];
  }

  private void check(X509Certificate[] chain, KeylessClient.Purpose purpose, PeerName name) throws CertificateException {
    if (chain == null || chain.length == 0) {
      throw new CertificateException("the peer sent no certificate");
    }
    if (purpose == KeylessClient.Purpose.SERVER_AUTH && name.isNone()) {
      throw new CertificateException("no host name to check the server's certificate against: "
          + "connect with a host name, set SNI, or give the trust manager a PeerName");
    }
    ChainVerdict verdict;
    try {
      verdict = client.validate(Arrays.asList(chain), purpose, name, trustBundle);
    } catch (KeylessException e) {
      throw new CertificateException("could not validate the peer's chain: " + e.getMessage(), e);
    }
    verdict.requireValid();
  }

  private static PeerName serverName(SSLParameters parameters, SSLSession session) {
    List<SNIServerName> names = parameters == null ? null : parameters.getServerNames();
    if (names != null) {
      for (SNIServerName sni : names) {
        if (sni instanceof SNIHostName) {
          return PeerName.dns(((SNIHostName) sni).getAsciiName());
        }
      }
    }
    String host = session == null ? null : session.getPeerHost();
    return host == null || host.isBlank() ? PeerName.none() : PeerName.host(host);
  }
}
