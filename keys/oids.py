"""Object identifiers of the Chinese national algorithms (GB/T 33560), in one place."""

SM2_CURVE = "1.2.156.10197.1.301"  # sm2p256v1 / SM2 algorithm
SM3 = "1.2.156.10197.1.401"
SM3_WITH_SM2 = "1.2.156.10197.1.501"  # signature algorithm: SignatureMethod, signAlgID, X.509
SM4 = "1.2.156.10197.1.100"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
