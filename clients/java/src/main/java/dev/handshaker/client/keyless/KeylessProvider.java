package dev.handshaker.client.keyless;

import java.security.Provider;
import java.security.Security;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The JCA provider "HandshakerKeyless": Signature and Cipher implementations that run on
 * {@link KeylessPrivateKey}s by calling the service's KeyOperations, so that stock JSSE can sign
 * CertificateVerify / ServerKeyExchange and decrypt an RSA premaster secret with a key it never
 * holds.
 *
 * <p>JSSE asks for {@code Signature.getInstance(alg)} and {@code Cipher.getInstance(t)} without a
 * provider, which delays the choice of provider until {@code initSign} / {@code init} sees the
 * key: the first provider, in preference order, whose service accepts the key wins. {@link
 * #install()} puts this provider first; each of its services accepts only KeylessPrivateKeys
 * ({@code SupportedKeyClasses}, and {@code supportsParameter} says so), so every other key,
 * public keys for verification included, still goes to the stock providers. Should this
 * provider be chosen anyway (a caller that sets parameters or asks for the provider before
 * {@code init}), its Signature hands a non-keyless key to the next provider that takes it.
 *
 * <p>Signatures: SHA256/384/512withECDSA (scheme 0x0403/0x0503/0x0603; the service accepts any
 * ECDSA hash with the key's curve), SHA256/384/512withRSA (0x0401/0x0501/0x0601), RSASSA-PSS with
 * a PSSParameterSpec of SHA-256/384/512, MGF1 with the same hash and salt of the hash's length
 * (0x0804/0x0805/0x0806, rsa_pss_rsae), and Ed25519 (0x0807, the message is sent whole). Hashes
 * are computed here and the digest is sent. Cipher: RSA/ECB/PKCS1Padding in DECRYPT_MODE and
 * UNWRAP_MODE, through KeyOperations.Decrypt with implicit rejection.
 */
public final class KeylessProvider extends Provider {
  private static final long serialVersionUID = 1L;

  public static final String NAME = "HandshakerKeyless";

  private static final KeylessProvider INSTANCE = new KeylessProvider();

  private KeylessProvider() {
    super(NAME, "1.0", "handshaker keyless: signatures and RSA decryption by the service's KeyOperations");
    for (KeylessSignatureSpi.Algorithm a : KeylessSignatureSpi.Algorithm.values()) {
      putService(new KeylessService(this, "Signature", a.jcaName, KeylessSignatureSpi.class.getName(),
          () -> new KeylessSignatureSpi(a)));
    }
    putService(new KeylessService(this, "Cipher", "RSA/ECB/PKCS1Padding", KeylessRsaCipherSpi.class.getName(),
        KeylessRsaCipherSpi::new));
  }

  /** The one instance (install it with {@link #install()}, or add it where you like). */
  public static KeylessProvider get() {
    return INSTANCE;
  }

  /**
   * Puts the provider at position 1 of the JVM's providers unless it is installed already;
   * {@link KeylessKeyManager} calls this. Other keys are unaffected (see the class comment).
   */
  public static synchronized KeylessProvider install() {
    if (Security.getProvider(NAME) == null) {
      Security.insertProviderAt(INSTANCE, 1);
    }
    return INSTANCE;
  }

  private static final class KeylessService extends Provider.Service {
    private final Supplier<Object> factory;

    KeylessService(Provider provider, String type, String algorithm, String className, Supplier<Object> factory) {
      super(provider, type, algorithm, className, List.of(),
          Map.of("SupportedKeyClasses", KeylessPrivateKey.class.getName()));
      this.factory = factory;
    }

    // Instances are built here rather than by reflection, so the SPIs need no public constructor.
    @Override
    public Object newInstance(Object constructorParameter) {
      return factory.get();
    }

    // What SupportedKeyClasses says, without a class lookup by name on every init.
    @Override
    public boolean supportsParameter(Object parameter) {
      return parameter instanceof KeylessPrivateKey;
    }
  }
}
