//! `openclaw gateway install|start|stop|restart|uninstall|status`.
