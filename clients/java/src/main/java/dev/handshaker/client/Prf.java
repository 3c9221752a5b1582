package dev.handshaker.client;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.Set;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** The TLS 1.2 PRF (RFC 5246 section 5) and the RFC 5705 exporter on it. */
final class Prf {
  /** RFC 5705 section 4 reserves the labels TLS itself uses; refused as JSSE and crypto/tls do. */
  private static final Set<String> RESERVED_LABELS =
      Set.of("client finished", "server finished", "master secret", "key expansion");

  private Prf() {}

  /**
   * <pre>
   * P_hash(secret, seed) = HMAC_hash(secret, A(1) + seed) +
   *                        HMAC_hash(secret, A(2) + seed) + ...
   * A(0) = seed
   * A(i) = HMAC_hash(secret, A(i-1))
   * PRF(secret, label, seed) = P_&lt;hash&gt;(secret, label + seed)
   * </pre>
   *
   * The hash is the suite's: SHA-384 for the _SHA384 suites, else SHA-256.
   */
  static byte[] prf(CipherSuite suite, byte[] secret, byte[] label, byte[] seed, int length)
      throws GeneralSecurityException {
    Mac mac = Mac.getInstance(suite.hmacAlgorithm());
    mac.init(new SecretKeySpec(secret, suite.hmacAlgorithm()));
    byte[] labelAndSeed = new byte[label.length + seed.length];
    System.arraycopy(label, 0, labelAndSeed, 0, label.length);
    System.arraycopy(seed, 0, labelAndSeed, label.length, seed.length);
    byte[] out = new byte[length];
    byte[] a = mac.doFinal(labelAndSeed);
    for (int filled = 0; filled < length; ) {
      mac.update(a);
      byte[] block = mac.doFinal(labelAndSeed);
      int take = Math.min(block.length, length - filled);
      System.arraycopy(block, 0, out, filled, take);
      filled += take;
      a = mac.doFinal(a);
    }
    return out;
  }

  /**
   * RFC 5705 section 4:
   *
   * <pre>
   * PRF(SecurityParameters.master_secret, label,
   *     SecurityParameters.client_random +
   *     SecurityParameters.server_random +
   *     context_value_length + context_value
   *     )[length]
   * </pre>
   *
   * A null context is "no context" (neither length nor value in the seed), which differs from an
   * empty one.
   */
  static byte[] exporter(
      CipherSuite suite,
      byte[] masterSecret,
      byte[] clientRandom,
      byte[] serverRandom,
      byte[] label,
      byte[] context,
      int length)
      throws GeneralSecurityException {
    if (RESERVED_LABELS.contains(new String(label, StandardCharsets.US_ASCII))) {
      throw new IllegalArgumentException("reserved exporter label");
    }
    if (length < 0) {
      throw new IllegalArgumentException("negative length");
    }
    ByteArrayOutputStream seed = new ByteArrayOutputStream();
    seed.writeBytes(clientRandom);
    seed.writeBytes(serverRandom);
    if (context != null) {
      if (context.length > 0xffff) {
        throw new IllegalArgumentException("context longer than 2^16 - 1 bytes");
      }
      seed.write(context.length >>> 8);
      seed.write(context.length);
      seed.writeBytes(context);
    }
    return prf(suite, masterSecret, label, seed.toByteArray(), length);
  }
}
