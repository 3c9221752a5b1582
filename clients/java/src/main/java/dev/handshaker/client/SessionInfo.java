package dev.handshaker.client;

import com.google.protobuf.ByteString;
import dev.handshaker.v1.PeerIdentity;
import dev.handshaker.v1.SessionKeys;
import java.io.ByteArrayInputStream;
import java.security.GeneralSecurityException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.net.ssl.SSLException;

/** What a completed handshake negotiated, and the RFC 8446 exporter; holds no traffic key. */
public final class SessionInfo {
  private final int protocolVersion;
  private final CipherSuite cipherSuite;
  private final int group;
  private final String applicationProtocol;
  private final String serverName;
  private final boolean resumed;
  private final boolean helloRetry;
  private final int signatureScheme;
  private final int peerSignatureScheme;
  private final PeerIdentity peer;
  private final List<X509Certificate> peerCertificates;
  private final byte[] exporterMasterSecret;

  SessionInfo(SessionKeys keys) throws SSLException {
    this.protocolVersion = keys.getVersion();
    try {
      this.cipherSuite = CipherSuite.fromCodePoint(keys.getCipherSuite());
    } catch (IllegalArgumentException e) {
      throw new SSLException(e.getMessage());
    }
    this.group = keys.getGroup();
    this.applicationProtocol = keys.getAlpnProtocol();
    this.serverName = keys.getServerName();
    this.resumed = keys.getResumed();
    this.helloRetry = keys.getHelloRetry();
    this.signatureScheme = keys.getSignatureScheme();
    this.peerSignatureScheme = keys.getPeerSignatureScheme();
    this.peer = keys.getPeer();
    this.peerCertificates = parse(keys.getPeer().getChainDerList());
    this.exporterMasterSecret = keys.getExporterMasterSecret().toByteArray();
  }

  private static List<X509Certificate> parse(List<ByteString> chain) throws SSLException {
    List<X509Certificate> out = new ArrayList<>();
    try {
      CertificateFactory factory = CertificateFactory.getInstance("X.509");
      for (ByteString der : chain) {
        out.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(der.toByteArray())));
      }
    } catch (CertificateException e) {
      throw new SSLException("the peer certificate chain does not parse", e);
    }
    return List.copyOf(out);
  }

  /** The protocol version (IANA), 0x0304 for TLS 1.3. */
  public int protocolVersion() {
    return protocolVersion;
  }

  /** "TLSv1.3", as JSSE names it. */
  public String protocol() {
    return protocolVersion == 0x0304 ? "TLSv1.3" : String.format("0x%04x", protocolVersion);
  }

  public CipherSuite cipherSuite() {
    return cipherSuite;
  }

  /** The key exchange group (IANA NamedGroup), e.g. 0x001d for x25519. */
  public int group() {
    return group;
  }

  /** The negotiated ALPN protocol, or "" when none was. */
  public String applicationProtocol() {
    return applicationProtocol;
  }

  /** The server_name the client sent. */
  public String serverName() {
    return serverName;
  }

  public boolean resumed() {
    return resumed;
  }

  /** True when a HelloRetryRequest was part of the handshake. */
  public boolean helloRetry() {
    return helloRetry;
  }

  /** The scheme (IANA SignatureScheme) this side's CertificateVerify used; 0 when it sent none. */
  public int signatureScheme() {
    return signatureScheme;
  }

  /** The scheme of the peer's CertificateVerify; 0 when the peer sent no certificate. */
  public int peerSignatureScheme() {
    return peerSignatureScheme;
  }

  /** The peer's chain as it sent it, leaf first; empty when it sent none. */
  public List<X509Certificate> peerCertificates() {
    return peerCertificates;
  }

  /** The peer leaf's subject (RFC 4514), or "" when the peer sent no certificate. */
  public String peerSubject() {
    return peer.getSubject();
  }

  public List<String> peerDnsNames() {
    return peer.getDnsSansList();
  }

  public List<String> peerIpAddresses() {
    return peer.getIpSansList();
  }

  public List<String> peerUris() {
    return peer.getUriSansList();
  }

  /**
   * Keying material from the RFC 8446 section 7.5 exporter, for channel binding and protocols
   * that key themselves from the TLS session; both ends derive the same bytes.
   */
  public byte[] exportKeyingMaterial(byte[] label, byte[] context, int length) throws SSLException {
    try {
      return Hkdf.exporter(
          cipherSuite, exporterMasterSecret, label, context == null ? new byte[0] : context, length);
    } catch (GeneralSecurityException | IllegalArgumentException e) {
      throw new SSLException("exporter: " + e.getMessage());
    }
  }

  void destroy() {
    Arrays.fill(exporterMasterSecret, (byte) 0);
  }

  @Override
  public String toString() {
    return "SessionInfo[" + protocol() + ", " + cipherSuite + ", group=0x"
        + Integer.toHexString(group) + ", alpn=" + applicationProtocol + ", peer=" + peer.getSubject() + "]";
  }
}
