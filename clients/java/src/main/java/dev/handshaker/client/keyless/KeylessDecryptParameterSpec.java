package dev.handshaker.client.keyless;

import java.security.spec.AlgorithmParameterSpec;

/**
 * The plaintext length a keyless RSA decryption must yield, for {@code Cipher.init(DECRYPT_MODE,
 * key, spec)}: the service's implicit rejection needs it up front (a ciphertext that does not
 * decrypt to it yields random bytes of it). Without a spec the length is 48, a TLS premaster
 * secret's, which is what JSSE's RSA key exchange decrypts.
 */
public final class KeylessDecryptParameterSpec implements AlgorithmParameterSpec {
  public static final int TLS_PREMASTER_SECRET_LENGTH = 48;

  private final int plaintextLength;

  public KeylessDecryptParameterSpec(int plaintextLength) {
    if (plaintextLength < 1 || plaintextLength > 256) {
      throw new IllegalArgumentException("plaintext length must be 1 to 256 bytes");
    }
    this.plaintextLength = plaintextLength;
  }

  public int plaintextLength() {
    return plaintextLength;
  }
}
