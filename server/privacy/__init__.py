"""Data rights: a participant downloads what is held about them and asks for erasure; an
operator erases or anonymises a person and sets a retention period for ended pairs."""
