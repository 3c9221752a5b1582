package dev.handshaker.client;

import com.google.protobuf.ByteString;
import dev.handshaker.v1.PeerIdentity;
import dev.handshaker.v1.SessionKeys;
import dev.handshaker.v1.Tls12Session;
import java.io.ByteArrayInputStream;
import java.security.GeneralSecurityException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.net.ssl.SSLException;

/**
 * What a completed handshake negotiated, and the exporter (RFC 8446 section 7.5 for TLS 1.3, RFC
 * 5705 for TLS 1.2); holds no traffic key.
 */
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
  // TLS 1.2 only: the RFC 5705 exporter's inputs (SessionKeys.tls12).
  private final Tls12Session tls12;

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
    this.tls12 = keys.hasTls12() ? keys.getTls12() : null;
    if (cipherSuite.protocolVersion() != protocolVersion) {
      throw new SSLException(
          String.format("%s is not a suite of version 0x%04x", cipherSuite, protocolVersion));
    }
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

  /** The protocol version (IANA), 0x0304 for TLS 1.3, 0x0303 for TLS 1.2. */
  public int protocolVersion() {
    return protocolVersion;
  }

  /** "TLSv1.3" or "TLSv1.2", as JSSE names them. */
  public String protocol() {
    return switch (protocolVersion) {
      case 0x0304 -> "TLSv1.3";
      case 0x0303 -> "TLSv1.2";
      default -> String.format("0x%04x", protocolVersion);
    };
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
   *
   * <p>TLS 1.2: the RFC 5705 exporter, where a null context ("no context") differs from an empty
   * one; the labels RFC 5705 reserves are refused, and so is a session without the RFC 7627
   * extended master secret (its exporter output is not bound to the connection).
   */
  public byte[] exportKeyingMaterial(byte[] label, byte[] context, int length) throws SSLException {
    if (cipherSuite.isTls12()) {
      return exportTls12(label, context, length);
    }
    try {
      return Hkdf.exporter(
          cipherSuite, exporterMasterSecret, label, context == null ? new byte[0] : context, length);
    } catch (GeneralSecurityException | IllegalArgumentException e) {
      throw new SSLException("exporter: " + e.getMessage());
    }
  }

  private byte[] exportTls12(byte[] label, byte[] context, int length) throws SSLException {
    if (tls12 == null || !tls12.getExtendedMasterSecret()) {
      throw new SSLException("exporter: TLS 1.2 without the extended master secret");
    }
    try {
      return Prf.exporter(
          cipherSuite,
          tls12.getMasterSecret().toByteArray(),
          tls12.getClientRandom().toByteArray(),
          tls12.getServerRandom().toByteArray(),
          label,
          context,
          length);
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
