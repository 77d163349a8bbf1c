"""Recording files, crash recovery, retention and index.

Media workers write each call as a live stereo WAV (caller left, agent right); this
package takes over from there. ``wav`` inspects and repairs crashed files, ``naming``
names them, ``index`` keeps the recordings table, ``transcode`` turns WAVs into Opus or
MP3 off the event loop, ``recovery`` cleans up after a crash at server start, and
``retention`` deletes old recordings. See ``docs/recording.md``.

Nothing is imported here: ``transcode`` pulls in PyAV, which tools that only search the
index do not need.
"""
