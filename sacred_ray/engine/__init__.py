"""The driver side: runs trials on Ray and records them through the user's observers."""
