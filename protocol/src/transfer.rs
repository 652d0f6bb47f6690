//! File-transfer v1 application messages.
