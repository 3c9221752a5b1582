package dev.handshaker.client.keyless;

import java.security.cert.X509Certificate;
import java.util.List;

/**
 * CertificateValidator's verdict on a chain.
 *
 * @param valid whether the chain validated
 * @param verifiedPath VALID: the path that was built, leaf first, ending at the trust anchor
 * @param alert INVALID: the TLS alert a stack should send (42 bad_certificate, 48 unknown_ca, ...)
 * @param reason INVALID: why
 */
public record ChainVerdict(boolean valid, List<X509Certificate> verifiedPath, int alert, String reason) {
  public ChainVerdict {
    verifiedPath = List.copyOf(verifiedPath);
  }

  /** Returns normally for VALID; throws the verdict as an exception for INVALID. */
  public void requireValid() throws KeylessCertificateException {
    if (!valid) {
      throw new KeylessCertificateException(alert, reason);
    }
  }
}
