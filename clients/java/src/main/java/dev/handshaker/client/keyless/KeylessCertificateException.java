package dev.handshaker.client.keyless;

import java.security.cert.CertPathValidatorException;
import java.security.cert.CertPathValidatorException.BasicReason;
import java.security.cert.CertificateException;
import java.security.cert.PKIXReason;

/**
 * The service's CertificateValidator answered INVALID: the chain does not validate for the
 * purpose, name and trust bundle asked about. Carries the TLS alert the service says a stack
 * should send (IANA AlertDescription: 42 bad_certificate, 45 certificate_expired, 48 unknown_ca,
 * ...) and the service's reason.
 *
 * <p>JSSE picks the alert it sends itself, not from the exception's numbers. Its client side maps
 * a {@link CertPathValidatorException} cause's reason to an alert in some releases, so the cause
 * is one with the reason closest to the service's alert (expired, revoked, invalid signature,
 * no trust anchor); but the Java 17 JSSE the tests run on sends certificate_unknown (46) for
 * every trust manager failure, and a JSSE server always does. Read {@link #alert()} for the
 * service's verdict.
 */
public class KeylessCertificateException extends CertificateException {
  private static final long serialVersionUID = 1L;

  /** The TLS alerts CertificateValidator answers with, by number. */
  public static final int BAD_CERTIFICATE = 42;
  public static final int UNSUPPORTED_CERTIFICATE = 43;
  public static final int CERTIFICATE_REVOKED = 44;
  public static final int CERTIFICATE_EXPIRED = 45;
  public static final int CERTIFICATE_UNKNOWN = 46;
  public static final int UNKNOWN_CA = 48;

  private final int alert;
  private final String reason;

  public KeylessCertificateException(int alert, String reason) {
    super("certificate chain refused by the handshaker service: " + alertName(alert) + " (" + alert + "): " + reason);
    this.alert = alert;
    this.reason = reason;
    initCause(new CertPathValidatorException(reason, null, null, -1, jcaReason(alert)));
  }

  /** The TLS alert description (IANA) the service chose. */
  public int alert() {
    return alert;
  }

  /** Why the chain was refused, as the service said it. */
  public String reason() {
    return reason;
  }

  static String alertName(int alert) {
    switch (alert) {
      case BAD_CERTIFICATE:
        return "bad_certificate";
      case UNSUPPORTED_CERTIFICATE:
        return "unsupported_certificate";
      case CERTIFICATE_REVOKED:
        return "certificate_revoked";
      case CERTIFICATE_EXPIRED:
        return "certificate_expired";
      case CERTIFICATE_UNKNOWN:
        return "certificate_unknown";
      case UNKNOWN_CA:
        return "unknown_ca";
      default:
        return "alert";
    }
  }

  // The reason whose JSSE mapping yields the service's alert (see the class comment).
  private static CertPathValidatorException.Reason jcaReason(int alert) {
    switch (alert) {
      case CERTIFICATE_EXPIRED:
        return BasicReason.EXPIRED;
      case CERTIFICATE_REVOKED:
        return BasicReason.REVOKED;
      case UNSUPPORTED_CERTIFICATE:
        return BasicReason.ALGORITHM_CONSTRAINED;
      case UNKNOWN_CA:
        return PKIXReason.NO_TRUST_ANCHOR;
      case BAD_CERTIFICATE:
        return BasicReason.INVALID_SIGNATURE;
      default:
        return BasicReason.UNSPECIFIED;
    }
  }
}
