"""Parsers of the IATA feeds: AIDX XML, AHM 780 MVT and SSIM chapter 5 ASM telex messages."""
