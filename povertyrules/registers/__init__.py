"""Department registers (MON-5.1 数据共享与比对分析): files other departments hold, read as data, matched to
households through every member's 证件号码, each derived fact kept with its evidence."""
